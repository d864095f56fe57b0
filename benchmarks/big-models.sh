#!/usr/bin/env bash
# Big models end to end, with the release binaries on loopback:
#   1. 1 ps + 1 worker train --steps N at --hidden H --hidden2 H, checkpointing (cluster/run-local.sh);
#   2. the checkpoint is restored into 2 fresh servers under --partitioner auto (the values travel in the
#      register's tensor frames) and evaluated there, and the held-out line must equal the one the harness
#      printed from the checkpoint alone;
#   3. the figures: exchange GB/s and peak RSS of the worker, each server's share and peak RSS.
#
#   benchmarks/big-models.sh [--hidden H ...] [--steps N] [--no-build]
#
# Default: --hidden 1024 (14.7M parameters, 59 MB) and --hidden 2048 (58.7M, 235 MB), 20 steps each.
# Figures go to benchmarks/results/big-models.txt. Every wait is bounded; every process started is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=() steps=20 build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --hidden) sizes+=("${2-}"); shift 2 || { echo "--hidden needs a value" >&2; exit 64; } ;;
        --steps) steps=${2-}; shift 2 || { echo "--steps needs a value" >&2; exit 64; } ;;
        --no-build) build=0; shift ;;
        *) echo "big-models.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
[ ${#sizes[@]} -gt 0 ] || sizes=(1024 2048)
for h in "${sizes[@]}"; do [[ "$h" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "--hidden must be 1..4096, got '$h'" >&2; exit 64; }; done
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || { echo "--steps must be a positive whole number, got '$steps'" >&2; exit 64; }
if [ "$build" = 1 ]; then
    scripts/setup.sh
    swift build -c release --product ps-server >/dev/null && swift build -c release --product worker >/dev/null
fi
bin=.build/release
out=benchmarks/results/big-models.txt
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

{
    echo "# big models: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out"
for h in "${sizes[@]}"; do
    echo "== --hidden $h --hidden2 $h: 1 ps + 1 worker, $steps steps" | tee -a "$out"
    log="$work/train-$h.log"
    cluster/run-local.sh --servers 1 --workers 1 --steps "$steps" --no-build -- --hidden "$h" --hidden2 "$h" > "$log" 2>&1 || {
        tail -n 30 "$log" >&2; echo "training at --hidden $h failed" >&2; exit 1; }
    grep -E "per step:|exchange:|traffic:|memory|bytes per server" "$log" | sed 's/^\[[a-z]* [0-9]*\] [0-9T:+-]* [a-z]* [a-z-]*: //' | tee -a "$out"
    run=$(grep -o 'runs/[0-9-]*' "$log" | head -n 1)
    reference=$(grep -E "^held-out MSE" "$log" | tail -n 1)
    [ -n "$reference" ] || { echo "no held-out line from the harness at --hidden $h" >&2; exit 1; }

    echo "-- restored into 2 servers, --partitioner auto" | tee -a "$out"
    ports=()
    for i in 0 1; do
        "$bin/ps-server" --port 0 --port-file "$work/port-$h-$i" --name "r$i" --num-workers 1 > "$work/ps-$h-$i.log" 2>&1 &
        pids+=($!)
    done
    for i in 0 1; do
        for _ in $(seq 1 100); do [ -s "$work/port-$h-$i" ] && break; sleep 0.1; done
        [ -s "$work/port-$h-$i" ] || { echo "server r$i did not listen within 10 s" >&2; exit 1; }
        ports+=("127.0.0.1:$(cat "$work/port-$h-$i")")
    done
    restored=$("$bin/worker" --restore "$run/checkpoint" --ps "${ports[0]},${ports[1]}" --partitioner auto --steps 0 \
        --data co2 --hidden "$h" --hidden2 "$h" --timeout 600 2>"$work/restore-$h.err" | grep -E "^held-out MSE" | tail -n 1) || true
    for _ in $(seq 1 300); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    grep -ho "memory: .*" "$work/ps-$h-0.log" "$work/ps-$h-1.log" | tee -a "$out"
    echo "checkpoint alone:        $reference" | tee -a "$out"
    echo "through 2 servers, auto: $restored" | tee -a "$out"
    if [ "$restored" != "$reference" ]; then
        tail -n 20 "$work/restore-$h.err" >&2
        echo "the restore into 2 servers did not give the checkpoint's values" | tee -a "$out" >&2
        exit 1
    fi
    echo "same values: yes" | tee -a "$out"
done
echo "figures in $out"
