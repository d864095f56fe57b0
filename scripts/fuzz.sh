#!/usr/bin/env bash
# Fuzzes with libFuzzer for a bounded time, the budget split evenly across the targets:
#   FuzzServer       the wire decoder and the server's rules (Sources/FuzzServer, seeds Tests/Fuzz/corpus)
#   FuzzSafeTensors  the safetensors reader and checkpoint restore (Sources/FuzzSafeTensors,
#                    seeds Tests/Fuzz/corpus-safetensors)
#   FuzzWorkerReplies  every reply a worker reads, from a scripted hostile server (Sources/FuzzWorkerReplies,
#                    seeds Tests/Fuzz/corpus-replies)
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--address] [-- LIBFUZZER_OPTIONS...]     (default 60 s in all)
#
# Builds only the fuzz products, in release with -sanitize=fuzzer, into their own scratch path
# (.build/fuzz) so the normal debug and release builds are left alone. Seeds come from the committed
# corpora (written by `<target> --write-seeds DIR`); inputs the fuzzer finds go to .build/fuzz/corpus[-NAME],
# never into the committed ones. --address adds AddressSanitizer (its own scratch path,
# .build/fuzz-asan; about 10 times slower, for the unsafe-pointer reads of frames). Prints, per target,
# executions per second and the total; on a crash, exits non-zero and keeps the crashing input under
# Tests/Fuzz/crashes/ (replay it with `.build/debug/<target> FILE` from a plain build, or the fuzz binary
# given the file).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
sanitizers=fuzzer
scratch=.build/fuzz
targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --seconds=*) seconds="${1#--seconds=}"; shift ;;
        --address) sanitizers=fuzzer,address; scratch=.build/fuzz-asan; shift ;;
        --target) targets+=("${2:?--target needs FuzzServer or FuzzSafeTensors}"); shift 2 ;;
        --) shift; break ;;
        *) echo "fuzz.sh: unknown option $1 (use --seconds N, --target NAME, --address, then -- and libFuzzer options)" >&2; exit 64 ;;
    esac
done
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "fuzz.sh: --seconds must be a positive whole number, got '$seconds'" >&2; exit 64; }

scripts/setup.sh
[ ${#targets[@]} -gt 0 ] || targets=(FuzzServer FuzzSafeTensors FuzzWorkerReplies)
share=$((seconds / ${#targets[@]}))
[ "$share" -ge 1 ] || share=1

# fuzz_target NAME COMMITTED_CORPUS WORK_CORPUS [LIBFUZZER_OPTIONS...]: builds NAME, runs it for $share seconds, prints its figures.
fuzz_target() {
    local name=$1 seeds=$2 work=$3
    shift 3  # the rest are libFuzzer options
    local flags=(-c release --product "$name" --scratch-path "$scratch" -Xswiftc -sanitize="$sanitizers" -Xswiftc -DFUZZING)
    swift build "${flags[@]}" || return $?
    local bin
    bin="$(swift build "${flags[@]}" --show-bin-path)/$name" || return $?
    mkdir -p "$work" "$crashes"
    # Swift's backtracer would take the crash signals first; libFuzzer must see them to save the input.
    local status=0
    SWIFT_BACKTRACE=enable=no "$bin" "$work" "$seeds" \
        -max_total_time="$share" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$@" 2>"$log" || status=$?
    stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1 || true; }
    local execs rate corpus cov
    execs=$(stat number_of_executed_units)
    rate=$(stat average_exec_per_sec)
    corpus=$(grep -Eo 'corp: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2 || true)
    echo "fuzz $name ($sanitizers): ${execs:-0} executions in ${share} s budget (${rate:-0}/s), coverage ${cov:-?} edges, corpus ${corpus:-?} inputs, exit status $status"
    if [ "$status" -ne 0 ]; then
        grep -E 'Fatal error|SUMMARY|Test unit written|ERROR' "$log" >&2 || tail -40 "$log" >&2
        echo "fuzz $name: FAILED; the crashing input is kept in $crashes/" >&2
        return "$status"
    fi
}

crashes=Tests/Fuzz/crashes
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
for t in "${targets[@]}"; do
    case "$t" in
        # The work corpus is shared by the plain and the ASan builds: what one finds, the other starts from.
        FuzzServer) fuzz_target FuzzServer Tests/Fuzz/corpus .build/fuzz/corpus "$@" || status=$? ;;
        FuzzSafeTensors) fuzz_target FuzzSafeTensors Tests/Fuzz/corpus-safetensors .build/fuzz/corpus-safetensors "$@" || status=$? ;;
        FuzzWorkerReplies) fuzz_target FuzzWorkerReplies Tests/Fuzz/corpus-replies .build/fuzz/corpus-replies "$@" || status=$? ;;
        *) echo "fuzz.sh: unknown target $t (FuzzServer, FuzzSafeTensors or FuzzWorkerReplies)" >&2; exit 64 ;;
    esac
done
exit "$status"
