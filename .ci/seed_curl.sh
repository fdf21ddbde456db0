#!/usr/bin/env bash
# Smoke test: the seed walkthrough's "Integration with Invenio REST API" curl commands, verbatim
# but for the port, against `recfiles serve` on a temporary store.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${RECFILES_BIN:-target/debug/recfiles}"
PORT="${SEED_PORT:-5077}"
[ -x "$BIN" ] || cargo build --bin recfiles
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "seed_curl: FAIL: $*" >&2; [ -f "$work/server.log" ] && tail -20 "$work/server.log" >&2; exit 1; }

"$BIN" serve --store "$work/store.redb" --bind "127.0.0.1:$PORT" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://localhost:$PORT/api/records" && break
    kill -0 "$server_pid" 2>/dev/null || fail "the server exited"
    sleep 0.1
done

cd "$work"
# The walkthrough assumes record 1 exists: create it (a record with its bucket).
curl -s -X POST "http://localhost:$PORT/api/records" -H "Content-Type: application/json" \
    -d '{"title": "seed"}' >record.json
grep -q '"id":"1"' record.json || fail "record 1 was not created: $(cat record.json)"
printf 'Hello from the seed walkthrough\n' >example.txt
cp example.txt expected.txt

# Upload a file named example.txt to the record with pid of 1
curl -X PUT http://localhost:$PORT/api/records/1/files/example.txt \
       -H "Content-Type: application/octet-stream" \
       --data-binary @example.txt >put.json
grep -q '"key":"example.txt"' put.json || fail "PUT answered $(cat put.json)"
grep -q '"checksum":"md5:' put.json || fail "PUT has no md5 checksum: $(cat put.json)"

# Get the list of files for this record
curl -X GET http://localhost:$PORT/api/records/1/files/ >list.json
grep -q '"contents":\[{' list.json || fail "the listing is empty: $(cat list.json)"
grep -q '"key":"example.txt"' list.json || fail "the listing lacks example.txt: $(cat list.json)"

# Download the file named ``example.txt`` of this record
rm example.txt
curl -X GET http://localhost:$PORT/api/records/1/files/example.txt \
       -o example.txt
cmp -s example.txt expected.txt || fail "the downloaded file differs"

# The record's _files lists the file (the records-files view is kept true).
curl -s "http://localhost:$PORT/api/records/1" | grep -q '"_files":\[{' || fail "_files not updated"

# ng-file-upload's form upload (spec §4.7), as curl -F builds it: the size field, then the file.
curl -s -X PUT "http://localhost:$PORT/api/records/1/files/form.txt" \
    -F "_totalSize=$(wc -c <expected.txt)" -F "file=@expected.txt" >form.json
grep -q '"key":"form.txt"' form.json || fail "the form PUT answered $(cat form.json)"
curl -s "http://localhost:$PORT/api/records/1/files/form.txt" -o form.txt
cmp -s form.txt expected.txt || fail "the form-uploaded file differs"

kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not stop cleanly"
server_pid=""
grep -q "the store is closed" server.log || fail "no clean shutdown in the log"
echo "seed_curl: 5 passed, 0 failed"
