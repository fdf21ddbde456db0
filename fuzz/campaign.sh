#!/usr/bin/env bash
# A long fuzzing campaign over every target of recfiles, one target after another, then a
# report per target: executions, executions per second, coverage (libFuzzer's `cov:` edges and
# `ft:` features), corpus size and findings (crash, timeout and out-of-memory artifacts).
#
#   fuzz/campaign.sh                       # an hour per target, one job
#   CAMPAIGN_SECONDS=28800 CAMPAIGN_JOBS=2 fuzz/campaign.sh ops ops-crash metadata
#
# Knobs (environment):
#   CAMPAIGN_SECONDS    seconds per target (default 3600)
#   CAMPAIGN_JOBS       parallel fuzzing processes per target (default 1). Above 1 libFuzzer
#                       runs in fork mode and goes on after a finding, so one campaign can
#                       collect several.
#   CAMPAIGN_SANITIZER  none (default) or address (about 8 times slower; also checks the
#                       unsafe code of dependencies)
#   CAMPAIGN_DIR        where corpora, findings and logs go (default fuzz/campaign). The corpus
#                       found there is reused by the next campaign; the committed seed corpus
#                       (fuzz/corpus/<target>) is only read.
#   CAMPAIGN_ARGS       more libFuzzer options, e.g. "-max_len=8192" (a later option wins, so
#                       "-entropic_feature_frequency_threshold=255" brings libFuzzer's default
#                       back)
# The targets' own knobs (RECFILES_FUZZ_FULL_CHECK_EVERY, RECFILES_FUZZ_CRASH_EVERY and others,
# README "Fuzzing") pass through the environment.
# Arguments: the targets to run (default: ops ops-crash metadata content). `ops-crash` is the
# `ops` fuzzer with every input's `Crash` steps crashing (RECFILES_FUZZ_CRASH_EVERY=1): slower,
# and it keeps the recovery path as covered as the rest; plain `ops` crashes on every 8th input.
#
# A finding is a file in $CAMPAIGN_DIR/artifacts/<target>/; the README's "Fuzzing" section says
# how to replay and minimise it. The exit status is 1 when anything was found.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
seconds="${CAMPAIGN_SECONDS:-3600}"
jobs="${CAMPAIGN_JOBS:-1}"
sanitizer="${CAMPAIGN_SANITIZER:-none}"
out="${CAMPAIGN_DIR:-$here/campaign}"
read -r -a extra <<<"${CAMPAIGN_ARGS:-}"
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(ops ops-crash metadata content)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi
# cargo-fuzz needs nightly-only flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
echo "== building (sanitizer: $sanitizer)"
cargo fuzz build -O -s "$sanitizer"
bin="$here/target/$(rustc -vV | sed -n 's/^host: //p')/release"

report="$out/report-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p "$out/logs"
found=0
printf '%-9s %8s %12s %9s %7s %8s %7s  %s\n' target seconds executions exec/s cov ft corpus \
    findings >"$report"
for t in "${targets[@]}"; do
    # A mode is a fuzzer (the name before "-") with settings of its own.
    fuzzer="${t%%-*}"
    mode=()
    case "$t" in
    ops-crash) mode=(env RECFILES_FUZZ_CRASH_EVERY=1 RECFILES_FUZZ_JOURNAL_KIB=1024) ;;
    ops | metadata | content) ;;
    *) echo "unknown target $t (ops, ops-crash, metadata, content)" >&2 && exit 2 ;;
    esac
    mkdir -p "$out/corpus/$t" "$out/artifacts/$t"
    log="$out/logs/$t.log"
    # Features stop counting as rare for the entropic schedule after 16 hits instead of 255:
    # its bookkeeping of rare features cost more than the inputs (README, "Fuzzing").
    args=(-max_total_time="$seconds" -rss_limit_mb=3072 -print_final_stats=1
        -entropic_feature_frequency_threshold=16 -artifact_prefix="$out/artifacts/$t/")
    [ -f "$here/dict/$fuzzer.dict" ] && args+=(-dict="$here/dict/$fuzzer.dict")
    if [ "$jobs" -gt 1 ]; then
        args+=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    echo "== $t: ${seconds}s, $jobs job(s), log in $log"
    start="$out/logs/.start-$t"
    touch "$start"
    # libFuzzer exits non-zero on a finding; the report below says what it was.
    (cd "$out/logs" && "${mode[@]}" "$bin/$fuzzer" "${args[@]}" "${extra[@]}" "$out/corpus/$t" \
        "$here/corpus/$fuzzer") \
        >"$log" 2>&1 || true
    # The last progress line: "#<executions> ... cov: <edges> ft: <features> corp: <n>/...".
    last=$(grep -aE '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
    execs="${execs:-0}"
    cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(find "$out/corpus/$t" -type f | wc -l)
    new=$(find "$out/artifacts/$t" -type f -newer "$start" | sort)
    findings="none"
    if [ -n "$new" ]; then
        found=1
        findings="$(wc -l <<<"$new") in $out/artifacts/$t/: $(xargs -n1 basename <<<"$new" |
            head -n 5 | tr '\n' ' ')"
    fi
    printf '%-9s %8s %12s %9s %7s %8s %7s  %s\n' "$t" "$seconds" "$execs" \
        "$((execs / seconds))" "${cov:-?}" "${ft:-?}" "$corp" "$findings" | tee -a "$report"
done
echo "== report: $report"
cat "$report"
exit "$found"
