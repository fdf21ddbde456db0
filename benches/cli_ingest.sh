#!/usr/bin/env bash
# `recfiles ingest` of a generated tree against `cp -r` + `sync` and `tar` into a file, on
# the same disk, one after the other in one run; then `recfiles export` of the store (an OCFL
# storage root) and `recfiles import` of that export into a new store. The source tree is read once beforehand so
# every contender starts from a warm page cache. Figures are printed, never asserted.
#
#   benches/cli_ingest.sh [WORKDIR] [SMALL_FILES] [LARGE_FILES] [LARGE_MIB]
#
# Needs a release build: cargo build --release --bin recfiles
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${RECFILES_BIN:-$here/target/release/recfiles}"
work="${1:-$here/target/cli-bench}"
small="${2:-10000}"
large="${3:-4}"
large_mib="${4:-64}"
[ -x "$bin" ] || { echo "no $bin: cargo build --release --bin recfiles" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work/src"
echo "generating $small small files (1-8 KiB, 100 directories) and $large x $large_mib MiB in $work/src" >&2
python3 - "$work/src" "$small" "$large" "$large_mib" <<'PY'
import os, random, sys
root, small, large, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(16)
for i in range(small):
    d = os.path.join(root, "d%02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 8192)))
os.makedirs(os.path.join(root, "large"), exist_ok=True)
for i in range(large):
    with open(os.path.join(root, "large", "big%d.bin" % i), "wb") as f:
        for _ in range(mib):
            f.write(rng.randbytes(1 << 20))
PY
sync
total_bytes=$(du -sb --apparent-size "$work/src" | cut -f1)
files=$(find "$work/src" -type f | wc -l)
cat "$work"/src/*/* > /dev/null

now() { date +%s.%N; }
report() { # name start end
    awk -v n="$1" -v s="$2" -v e="$3" -v b="$total_bytes" -v f="$files" \
        'BEGIN { t = e - s; printf "%-28s %8.2f s  %8.1f MiB/s  %8.0f files/s\n", n, t, b / 1048576 / t, f / t }'
}
echo "tree: $files files, $((total_bytes / 1048576)) MiB" >&2
printf '%-28s %10s  %14s  %14s\n' contender time rate files

for jobs in 1 4; do
    rm -f "$work/store.redb"
    s=$(now)
    "$bin" ingest "$work/src" --store "$work/store.redb" --jobs "$jobs" > "$work/ingest-$jobs.txt" 2>/dev/null
    e=$(now)
    report "recfiles ingest --jobs $jobs" "$s" "$e"
    sed 's/^/    /' "$work/ingest-$jobs.txt" >&2
done

# The last store out as an OCFL storage root, and that export into a new store.
s=$(now); "$bin" export "$work/export" --store "$work/store.redb" > /dev/null; e=$(now)
report "recfiles export" "$s" "$e"
s=$(now); "$bin" import "$work/export" --store "$work/imported.redb" > /dev/null; e=$(now)
report "recfiles import" "$s" "$e"
rm -rf "$work/export" "$work/imported.redb"

rm -rf "$work/copy"
s=$(now); cp -r "$work/src" "$work/copy"; sync; e=$(now)
report "cp -r + sync" "$s" "$e"

rm -f "$work/src.tar"
s=$(now); tar cf "$work/src.tar" -C "$work" src; sync; e=$(now)
report "tar cf + sync" "$s" "$e"

echo "sizes: store $(stat -c %s "$work/store.redb") B, tar $(stat -c %s "$work/src.tar") B, tree $total_bytes B" >&2
rm -rf "$work"
