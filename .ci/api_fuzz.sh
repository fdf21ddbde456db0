#!/usr/bin/env bash
# Fuzzes the REST API with schemathesis (PyPI) against the server's own OpenAPI document:
# no 5xx on any generated request, the server still up, and the store's check() clean after a
# clean stop. Bounded in time.
#
# Knobs: RECFILES_API_FUZZ_EXAMPLES (examples per operation, default 30),
#        RECFILES_API_FUZZ_SECONDS (wall-clock bound, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${RECFILES_BIN:-target/debug/recfiles}"
PORT="${API_FUZZ_PORT:-5079}"
examples="${RECFILES_API_FUZZ_EXAMPLES:-30}"
seconds="${RECFILES_API_FUZZ_SECONDS:-300}"
[ -x "$BIN" ] || cargo build --bin recfiles
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q schemathesis
"$BIN" serve --store "$work/store.redb" --bind "127.0.0.1:$PORT" --log warn --part-min 4 \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/api/openapi.json" && break
    sleep 0.1
done
# Something for the record routes to find.
curl -s -X POST "http://127.0.0.1:$PORT/api/records" -d '{}' >/dev/null

status=0
timeout "$seconds" "$work/venv/bin/schemathesis" run \
    "http://127.0.0.1:$PORT/api/openapi.json" --url "http://127.0.0.1:$PORT" \
    --checks not_a_server_error --max-examples "$examples" >"$work/st.log" 2>&1 || status=$?
grep -E "generated|passed|failed|SUMMARY" "$work/st.log" | tail -5 || true
# 124: the time bound ran out, which is fine; anything else non-zero is a failure.
if [ "$status" -ne 0 ] && [ "$status" -ne 124 ]; then
    tail -60 "$work/st.log" >&2
    echo "api_fuzz: schemathesis found failures" >&2
    exit 1
fi
kill -0 "$server_pid" || { echo "api_fuzz: the server died" >&2; tail -20 "$work/server.log" >&2; exit 1; }
kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
"$BIN" check --store "$work/store.redb"
echo "api_fuzz: 1 passed, 0 failed"
