#!/usr/bin/env bash
# Builds the courier client for iOS and puts it where the Swift package
# (ios-demo/CallaheadKit) expects it:
#
#   CallaheadKit/CallaheadFFI.xcframework        libcallahead_ffi.a for devices
#                                                (arm64) and simulators (arm64 +
#                                                x86_64), with the C header and
#                                                the module map of callaheadFFI
#   CallaheadKit/Sources/callahead/callahead.swift   the generated Swift bindings
#
#   ios-demo/scripts/build-xcframework.sh [--debug]
#
# Runs on a Mac with Xcode (xcodebuild, lipo) and rustup:
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
# Respects CARGO_TARGET_DIR.
set -euo pipefail
ios=$(cd "$(dirname "$0")/.." && pwd)
repo=$(cd "$ios/.." && pwd)
kit="$ios/CallaheadKit"

profile=release
cargo_profile=(--release)
for arg in "$@"; do
  case "$arg" in
    --debug) profile=debug; cargo_profile=() ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "build-xcframework.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

device=aarch64-apple-ios
simulators=(aarch64-apple-ios-sim x86_64-apple-ios)

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh: needs macOS with Xcode" >&2; exit 1; }
command -v xcodebuild >/dev/null || { echo "build-xcframework.sh: xcodebuild not found: install Xcode" >&2; exit 1; }
installed=$(rustup target list --installed)
missing=()
for t in "$device" "${simulators[@]}"; do
  grep -qx "$t" <<<"$installed" || missing+=("$t")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-xcframework.sh: missing Rust targets: rustup target add ${missing[*]}" >&2
  exit 1
fi

cd "$repo"
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

# The package's minimum iOS; the C code (SQLite, ring) is compiled for it too.
export IPHONEOS_DEPLOYMENT_TARGET=16.0
for t in "$device" "${simulators[@]}"; do
  cargo build --locked -p callahead-ffi --lib --target "$t" "${cargo_profile[@]}"
done

# One library per platform: the two simulator architectures become one fat file.
sim_dir="$target_dir/ios-simulator/$profile"
mkdir -p "$sim_dir"
lipo -create \
  "$target_dir/aarch64-apple-ios-sim/$profile/libcallahead_ffi.a" \
  "$target_dir/x86_64-apple-ios/$profile/libcallahead_ffi.a" \
  -output "$sim_dir/libcallahead_ffi.a"

# Swift bindings, C header and module map from the workspace's bindgen.
scripts/bindgen swift >/dev/null

headers=$(mktemp -d)
trap 'rm -rf "$headers"' EXIT
cp bindings/swift/callaheadFFI.h "$headers/"
# Xcode finds a library's clang module through Headers/module.modulemap.
cp bindings/swift/callaheadFFI.modulemap "$headers/module.modulemap"

rm -rf "$kit/CallaheadFFI.xcframework"
xcodebuild -create-xcframework \
  -library "$target_dir/$device/$profile/libcallahead_ffi.a" -headers "$headers" \
  -library "$sim_dir/libcallahead_ffi.a" -headers "$headers" \
  -output "$kit/CallaheadFFI.xcframework"
mkdir -p "$kit/Sources/callahead"
cp bindings/swift/callahead.swift "$kit/Sources/callahead/callahead.swift"

echo "build-xcframework.sh: ${kit#"$repo"/}/CallaheadFFI.xcframework and Sources/callahead/callahead.swift are ready"
