#!/usr/bin/env bash
# Builds the courier client's native library for Android and generates the
# Kotlin bindings the app compiles against:
#
#   app/src/main/jniLibs/{arm64-v8a,armeabi-v7a,x86_64}/libcallahead_ffi.so
#   ../bindings/kotlin/uniffi/callahead/callahead.kt   (by the repo's scripts/bindgen)
#
#   android-demo/scripts/build-android-libs.sh [--debug] [ABI ...]
#
# ABIs default to arm64-v8a (phones, Apple-silicon emulators), armeabi-v7a
# (older phones) and x86_64 (emulators on Intel/AMD). One ABI is enough for
# a quick try on one emulator. Needs:
#   cargo install cargo-ndk
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
#   an NDK (Android Studio > SDK Manager > SDK Tools > NDK (Side by side));
#   cargo-ndk finds the newest one under the SDK, or set ANDROID_NDK_HOME.
# Respects CARGO_TARGET_DIR.
set -euo pipefail
demo=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$demo/.." && pwd)

# The app's minSdk: the library links against this API level's libc.
api_level=26
profile=(--release)
abis=()
for arg in "$@"; do
  case "$arg" in
    --debug) profile=() ;;
    arm64-v8a|armeabi-v7a|x86_64|x86) abis+=("$arg") ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "build-android-libs.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ ${#abis[@]} -gt 0 ] || abis=(arm64-v8a armeabi-v7a x86_64)

rust_target() {
  case "$1" in
    arm64-v8a) echo aarch64-linux-android ;;
    armeabi-v7a) echo armv7-linux-androideabi ;;
    x86_64) echo x86_64-linux-android ;;
    x86) echo i686-linux-android ;;
  esac
}

if ! cargo ndk --version >/dev/null 2>&1; then
  echo "build-android-libs.sh: cargo-ndk is missing: cargo install cargo-ndk" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  missing=()
  for abi in "${abis[@]}"; do
    t=$(rust_target "$abi")
    grep -qx "$t" <<<"$installed" || missing+=("$t")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "build-android-libs.sh: missing Rust targets: rustup target add ${missing[*]}" >&2
    exit 1
  fi
fi

targets=()
for abi in "${abis[@]}"; do targets+=(-t "$abi"); done

cd "$repo"
jni_libs="$demo/app/src/main/jniLibs"
# Libraries of ABIs not asked for this time would be stale: start clean.
rm -rf "$jni_libs"
cargo ndk "${targets[@]}" --platform "$api_level" --output-dir "$jni_libs" \
  build --locked -p callahead-ffi --lib "${profile[@]}"

# Bindings come from the host build of the same crate: same source, same API.
scripts/bindgen kotlin >/dev/null

built=$(cd "$jni_libs" 2>/dev/null && find . -name 'libcallahead_ffi.so' | sort | sed 's|^\./|  |')
[ -n "$built" ] || { echo "build-android-libs.sh: cargo ndk produced no library in $jni_libs" >&2; exit 1; }
echo "build-android-libs.sh: native libraries in ${jni_libs#"$repo"/}:"
echo "$built"
echo "build-android-libs.sh: Kotlin bindings in bindings/kotlin"
