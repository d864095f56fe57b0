#!/usr/bin/env bash
# The local cluster: P parameter servers and W workers on loopback, on the built-in data.
#
#   cluster/run-local.sh [--servers P] [--workers W] [--steps N] [--mode async|sync] [--data NAME|CSV]
#                        [--column C] [--bin DIR] [--no-build] [-- extra worker options]
#
# Builds the release binaries (unless --no-build), starts the servers on free ports, starts the workers
# with their task index, prefixes every line of output with its process, stops everything on Ctrl-C or
# as soon as one process fails, and at the end evaluates the servers' checkpoint on the held-out split
# next to the naive forecast. Every wait is bounded. Run files go to runs/<timestamp>/.
set -euo pipefail
cd "$(dirname "$0")/.."

servers=2 workers=2 steps=2000 mode=async data=co2 column="" build=1 bin=".build/release" extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) servers=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --steps) steps=$2; shift 2 ;;
        --mode) mode=$2; shift 2 ;;
        --data) data=$2; shift 2 ;;
        --column) column=$2; shift 2 ;;
        --bin) bin=$2; build=0; shift 2 ;;
        --no-build) build=0; shift ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "run-local.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done

if [ "$build" = 1 ]; then
    scripts/setup.sh
    swift build -c release --product ps-server >&2
    swift build -c release --product worker >&2
fi
[ -x "$bin/ps-server" ] && [ -x "$bin/worker" ] || { echo "no ps-server/worker binaries in $bin: build first" >&2; exit 1; }

run="runs/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$run/checkpoint"
data_args=(--data "$data")
[ -n "$column" ] && data_args+=(--column "$column")

pids=()
cleanup() {
    trap - INT TERM EXIT
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # Give them a moment to stop cleanly, then make sure.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap 'echo "stopping every process" >&2; cleanup; exit 130' INT TERM
trap cleanup EXIT

# Servers on free ports: each writes the port it bound.
endpoints=()
for i in $(seq 0 $((servers - 1))); do
    "$bin/ps-server" --port 0 --port-file "$run/ps-$i.port" --name "ps-$i" --mode "$mode" \
        --checkpoint-dir "$run/checkpoint" > >(sed -u "s/^/[ps $i] /") 2>&1 &
    pids+=($!)
done
for i in $(seq 0 $((servers - 1))); do
    for _ in $(seq 1 100); do
        [ -s "$run/ps-$i.port" ] && break
        kill -0 "${pids[$i]}" 2>/dev/null || { echo "ps $i exited before listening; see its output above" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$run/ps-$i.port" ] || { echo "ps $i did not start listening within 10 s; see its output above" >&2; exit 1; }
    endpoints+=("127.0.0.1:$(cat "$run/ps-$i.port")")
done
ps_list=$(IFS=,; echo "${endpoints[*]}")
echo "servers: $ps_list   workers: $workers   mode: $mode   steps: $steps   data: $data   run: $run"

worker_pids=()
for i in $(seq 0 $((workers - 1))); do
    "$bin/worker" --ps "$ps_list" --task-index "$i" --num-workers "$workers" --steps "$steps" \
        "${data_args[@]}" --log-every 250 "${extra[@]}" > >(sed -u "s/^/[worker $i] /") 2>&1 &
    worker_pids+=($!)
    pids+=($!)
done

echo "${pids[*]}" > "$run/pids"

# Wait for the workers; the first failure stops the whole cluster.
failed=0
remaining=("${worker_pids[@]}")
while [ ${#remaining[@]} -gt 0 ]; do
    next=()
    for p in "${remaining[@]}"; do
        if kill -0 "$p" 2>/dev/null; then next+=("$p"); continue; fi
        if ! wait "$p"; then failed=1; fi
    done
    remaining=("${next[@]}")
    if [ "$failed" = 1 ]; then echo "a worker failed: stopping the cluster" >&2; exit 1; fi
    [ ${#remaining[@]} -gt 0 ] && sleep 0.2
done

# Servers exit by themselves once every worker is done, after writing their checkpoints.
for _ in $(seq 1 150); do
    n=$(ls "$run/checkpoint"/*.safetensors 2>/dev/null | wc -l)
    [ "$n" -ge "$servers" ] && break
    sleep 0.2
done
[ "$(ls "$run/checkpoint"/*.safetensors 2>/dev/null | wc -l)" -ge "$servers" ] || { echo "servers wrote no checkpoint within 30 s" >&2; exit 1; }

echo "evaluating the servers' checkpoint ($run/checkpoint) on the held-out split:"
"$bin/worker" --restore "$run/checkpoint" --steps 0 "${data_args[@]}" "${extra[@]}" | grep -E "held-out"
