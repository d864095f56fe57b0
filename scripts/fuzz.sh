#!/usr/bin/env bash
# Fuzzes the wire decoder and the server's rules (Sources/FuzzServer) with libFuzzer for a bounded time.
#
#   scripts/fuzz.sh [--seconds N] [--address] [-- LIBFUZZER_OPTIONS...]     (default 60 s)
#
# Builds only the FuzzServer product, in release with -sanitize=fuzzer, into its own scratch path
# (.build/fuzz) so the normal debug and release builds are left alone. Seeds come from the committed
# corpus (Tests/Fuzz/corpus, written by `FuzzServer --write-seeds`); inputs the fuzzer finds go to
# .build/fuzz/corpus, never into the committed one. --address adds AddressSanitizer (its own scratch path,
# .build/fuzz-asan; about 10 times slower, for the unsafe-pointer reads of frames). Prints executions per second and the total; on a
# crash, exits non-zero and keeps the crashing input under Tests/Fuzz/crashes/ (replay it with
# `.build/debug/FuzzServer FILE` from a plain build, or the fuzz binary given the file).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
sanitizers=fuzzer
scratch=.build/fuzz
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) seconds="${1#--seconds=}"; shift ;;
        --address) sanitizers=fuzzer,address; scratch=.build/fuzz-asan; shift ;;
        --) shift; break ;;
        *) echo "fuzz.sh: unknown option $1 (use --seconds N, --address, then -- and libFuzzer options)" >&2; exit 64 ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds must be a positive whole number, got '$seconds'" >&2; exit 64; }

scripts/setup.sh
flags=(-c release --product FuzzServer --scratch-path "$scratch" -Xswiftc -sanitize="$sanitizers" -Xswiftc -DFUZZING)
swift build "${flags[@]}"
bin="$(swift build "${flags[@]}" --show-bin-path)/FuzzServer"

work=.build/fuzz/corpus  # shared by both builds: what one finds, the other starts from
crashes=Tests/Fuzz/crashes
mkdir -p "$work" "$crashes"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Swift's backtracer would take the crash signals first; libFuzzer must see them to save the input.
status=0
SWIFT_BACKTRACE=enable=no "$bin" "$work" Tests/Fuzz/corpus \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" "$@" 2>"$log" || status=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1 || true; }
execs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
corpus=$(grep -Eo 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
echo "fuzz ($sanitizers): ${execs:-0} executions in ${seconds} s budget (${rate:-0}/s), coverage ${cov:-?} edges, corpus ${corpus:-?} inputs, exit status $status"
if [ "$status" -ne 0 ]; then
    grep -E 'Fatal error|SUMMARY|Test unit written|ERROR' "$log" >&2 || tail -40 "$log" >&2
    echo "fuzz: FAILED; the crashing input is kept in $crashes/" >&2
    exit "$status"
fi
