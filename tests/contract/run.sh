#!/usr/bin/env bash
# The API contract (issue #12): `GET /openapi.json` must pass
# openapi-spec-validator, and schemathesis, fuzzing a live server with an
# admin token, must find no 5xx and no answer the document does not describe.
# The server is seeded first (seed.py: a depot, couriers, a route, a call, a
# campaign, webhooks) and the fuzzer pointed at those ids, the courier's
# operations at the courier's token and the destructive ones at spare
# accounts; coverage.py then fails a run whose operations mostly met 401 or
# 404, which would have tested nothing.
#
#   tests/contract/run.sh SERVER_BIN
#
# Installs both tools from PyPI into a virtualenv under the target dir.
set -euo pipefail
bin=${1:?usage: tests/contract/run.sh SERVER_BIN}
work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

venv=${CALLAHEAD_CONTRACT_VENV:-$(dirname "$bin")/contract-venv}
# The requirements are remembered beside the venv: a venv made for older
# ones (schemathesis before 4.32 has no dictionaries) is brought up to date.
requirements='schemathesis>=4.32,<5 openapi-spec-validator>=0.7'
if [ ! -x "$venv/bin/schemathesis" ] || [ "$(cat "$venv/.callahead-requirements" 2>/dev/null)" != "$requirements" ]; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  # shellcheck disable=SC2086 # one word per requirement
  "$venv/bin/pip" install -q --disable-pip-version-check $requirements
  echo "$requirements" >"$venv/.callahead-requirements"
fi

admin="contract-test-admin-token-$(date +%s)-0123456789"
# The contract, not the limits, is under test: limits high enough that the
# fuzzer's wrong tokens do not block its address.
CALLAHEAD_ADMIN_TOKEN=$admin RUST_LOG=warn "$bin" serve --listen 127.0.0.1:0 --db "$work/contract.db" \
  --auth-failures-per-minute 100000 --reschedule-pages-per-minute 100000 --writes-per-minute 100000 \
  --campaign-runs-per-minute 100000 --outbound-allow 127.0.0.1/32 >"$work/stdout" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  url=$(sed -n 's/^callahead-server listening on //p' "$work/stdout")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start"; cat "$work/server.log"; exit 1; }

echo "== openapi-spec-validator $url/openapi.json"
python3 -c 'import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1]).read())' \
  "$url/openapi.json" >"$work/openapi.json"
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

here=$(cd "$(dirname "$0")" && pwd)
echo "== seeding $url"
python3 "$here/seed.py" "$url" "$admin" "$work/schemathesis.toml"
metrics() { python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/metrics", headers={"Authorization": "Bearer " + sys.argv[2]})
sys.stdout.buffer.write(urllib.request.urlopen(r).read())' "$url" "$admin"; }
metrics >"$work/metrics-before"

echo "== schemathesis against $url"
# The admin token is in the generated config (not --header, which would
# override the courier operations' own token).
"$venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run "$url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${CALLAHEAD_CONTRACT_EXAMPLES:-25}" --seed 12 --no-color \
  --report junit --report-dir "$work/report" || fuzz_failed=1
metrics >"$work/metrics-after"
echo "== what the run exercised"
python3 "$here/coverage.py" "$work/openapi.json" "$work/metrics-before" "$work/metrics-after" || fuzz_failed=1
if grep -q "panicked" "$work/server.log"; then
  echo "the server panicked:"; cat "$work/server.log"; exit 1
fi
[ -z "${fuzz_failed:-}" ] || { echo "the contract run failed (above)"; exit 1; }
