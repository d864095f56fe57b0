#!/usr/bin/env bash
# Throughput, ours and TensorFlow's side by side, at the anchor's benchmark configuration
# (batch 32, window 24, horizon 12, hidden 64, hidden2 64, Adam 1e-3, one thread per process).
#
#   scripts/bench.sh [--steps N] [--tf PYTHON]
#   scripts/bench.sh --sweep [--tf PYTHON] [--scale F] [--only SETTING,...]
#
# PYTHON is an interpreter with tensorflow-cpu 2.21 and tf-keras (see benchmarks/anchors/README.md);
# by default $TF_PYTHON, else tfref/bin/python beside the repository or in $HOME, else TensorFlow is skipped.
# Prints: one process; 1 ps + 2 workers async and sync; bytes per step against the floor.
# --sweep instead varies window, horizon, hidden and batch one at a time, and workers 1-4 (1 ps; ours with and without
# --prefetch, and TensorFlow's ps/worker), with benchmarks/sweep/sweep.py (--only SETTING,... reruns some, keeping the rest):
# benchmarks/results/sweep.csv, one PNG per setting (matplotlib from PYTHON, else from python3 if it has
# it), fitted growths and peak RSS in benchmarks/results/sweep_summary.txt; about 10-15 minutes with
# TensorFlow on a 2-core machine (--scale multiplies the steps per point).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=500 tf="${TF_PYTHON:-}" sweep=0 scale=1 only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps=$2; shift 2 ;;
        --tf) tf=$2; shift 2 ;;
        --sweep) sweep=1; shift ;;
        --scale) scale=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        *) echo "bench.sh: unknown option $1" >&2; exit 64 ;;
    esac
done
for candidate in ../tfref/bin/python "$HOME/tfref/bin/python"; do
    [ -z "$tf" ] && [ -x "$candidate" ] && tf=$candidate
done
scripts/setup.sh
bin=.build/release
if [ $sweep = 1 ]; then
    [ -n "$tf" ] || echo "bench.sh: no TensorFlow Python (--tf or TF_PYTHON): sweeping ours only" >&2
    swift build -c release >&2
    "${tf:-python3}" benchmarks/sweep/sweep.py --bench "$bin/bench" --tf "$tf" --out benchmarks/results --scale "$scale" \
        --only "$only"
    exit
fi
swift build -c release >&2
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT

rate() { sed -n 's/.*"examples_per_s": \([0-9.]*\).*/\1/p' "$1" | head -1; }
ours_rate() { sed -n 's/^trained .*: \([0-9.]*\) examples\/s.*/\1/p' "$1" | head -1; }
sum() { awk '{s += $1} END {printf "%.0f", s}'; }

median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) printf "%.0f", v[(NR + 1) / 2]; else printf "%.0f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "== one process, $steps steps, 3 interleaved pairs (ours, TensorFlow), one thread each"
: > "$work/ours-singles"; : > "$work/tf-singles"
for round in 1 2 3; do
    $bin/bench --steps "$steps" --threads 1 | tee "$work/ours-single-$round"
    rate "$work/ours-single-$round" >> "$work/ours-singles"
    if [ -n "$tf" ]; then
        (cd benchmarks/anchors && "$tf" tf_bench.py single --steps "$steps") 2>/dev/null | tee "$work/tf-single-$round"
        rate "$work/tf-single-$round" >> "$work/tf-singles"
    fi
done
ours_single=$(median < "$work/ours-singles")
if [ -n "$tf" ]; then
    tf_single=$(median < "$work/tf-singles")
    awk -v a="$ours_single" -v b="$tf_single" 'BEGIN {printf "one process (medians of 3): ours %.0f examples/s, TensorFlow %.0f: %.2fx\n", a, b, a / b}'
else
    echo "one process (median of 3): ours $ours_single examples/s (no TensorFlow to compare)"
fi
echo "== 2 threads each (this machine has 2 cores): 3 interleaved pairs"
: > "$work/ours-2t"; : > "$work/tf-2t"
for round in 1 2 3; do
    $bin/bench --steps "$steps" --threads 2 | tee "$work/ours-2threads-$round"
    rate "$work/ours-2threads-$round" >> "$work/ours-2t"
    if [ -n "$tf" ]; then
        (cd benchmarks/anchors && "$tf" tf_bench.py single --steps "$steps" --threads 2) 2>/dev/null | tee "$work/tf-2threads-$round"
        rate "$work/tf-2threads-$round" >> "$work/tf-2t"
    fi
done
ours_2t=$(median < "$work/ours-2t")
if [ -n "$tf" ]; then
    tf_2t=$(median < "$work/tf-2t")
    tf_best=$(printf '%s\n%s\n' "$tf_single" "$tf_2t" | sort -n | tail -1)
    awk -v a="$ours_2t" -v b="$tf_2t" -v c="$tf_best" 'BEGIN {printf "2 threads (medians of 3): ours %.0f examples/s, TensorFlow %.0f: %.2fx; against TensorFlow at its best thread count (%.0f): %.2fx\n", a, b, a / b, c, a / c}'
else
    echo "2 threads (median of 3): ours $ours_2t examples/s"
fi

# Cluster scaling: 1 ps + 2 async workers against twice one worker alone, same binary and data, 1,500 steps.
cluster_rate() {  # workers extra-worker-flags... : prints the examples/s of all workers together
    local n=$1; shift
    local tag="c$n-$RANDOM"
    $bin/ps-server --port 0 --port-file "$work/$tag.port" --mode async > "$work/$tag-ps.log" 2>&1 &
    local ps=$!
    for _ in $(seq 1 100); do [ -s "$work/$tag.port" ] && break; sleep 0.1; done
    local ws=()
    for i in $(seq 0 $((n - 1))); do
        $bin/worker --ps 127.0.0.1:$(cat "$work/$tag.port") --task-index $i --num-workers $n --steps 1500 \
            --scaling relative --log-every 100000 "$@" > "$work/$tag-w$i.log" 2>&1 &
        ws+=($!)
    done
    wait "${ws[@]}" || { echo "a worker failed:" >&2; tail -n 5 "$work/$tag"-w*.log >&2; exit 1; }
    wait "$ps" || true
    for i in $(seq 0 $((n - 1))); do ours_rate "$work/$tag-w$i.log"; done | sum
    grep -h "^traffic" "$work/$tag-w0.log" > "$work/last-traffic"
    grep -h "^per step" "$work/$tag-w0.log" > "$work/last-times"
}
echo "== cluster scaling: 1 ps + 2 async workers against twice one worker alone, 1,500 steps each, 3 interleaved pairs"
for flags in "" "--prefetch"; do
    : > "$work/alone"; : > "$work/two"
    for round in 1 2 3; do
        cluster_rate 1 $flags >> "$work/alone"
        echo >> "$work/alone"
        cp "$work/last-times" "$work/alone-times"
        cluster_rate 2 $flags >> "$work/two"
        echo >> "$work/two"
        cp "$work/last-times" "$work/two-times"
        awk -v a="$(tail -n 1 "$work/alone")" -v t="$(tail -n 1 "$work/two")" \
            'BEGIN {printf "  pair: alone %.0f, two %.0f in all: %.2f\n", a, t, t / (2 * a)}'
    done
    alone=$(median < "$work/alone")
    two=$(median < "$work/two")
    awk -v a="$alone" -v t="$two" -v f="${flags:-(no prefetch)}" \
        'BEGIN {printf "%s: one worker alone %.0f examples/s; two workers %.0f in all (medians of 3); efficiency %.2f\n", f, a, t, t / (2 * a)}'
    echo "  worker 0, last pair: alone $(cat "$work/alone-times"); two $(cat "$work/two-times")"
done
echo "== bytes per step: float32 and bfloat16 on the wire (1 ps + 1 worker)"
for dtype in float32 bf16; do
    cluster_rate 1 --wire-dtype $dtype > /dev/null
    echo "$dtype: $(cat "$work/last-traffic")"
done

for mode in async sync; do
    echo "== 1 ps + 2 workers, $mode, $steps steps each"
    $bin/ps-server --port 0 --port-file "$work/port-$mode" --mode $mode > "$work/ps-$mode.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do [ -s "$work/port-$mode" ] && break; sleep 0.1; done
    port=$(cat "$work/port-$mode")
    for i in 0 1; do
        $bin/worker --ps 127.0.0.1:$port --task-index $i --num-workers 2 --steps "$steps" --log-every 100000 > "$work/w$i-$mode.log" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]: -2}" || { echo "a worker failed:"; tail -n 5 "$work"/w*-$mode.log; exit 1; }
    ours=$(for i in 0 1; do ours_rate "$work/w$i-$mode.log"; done | sum)
    grep -h "^traffic" "$work/w0-$mode.log"
    echo "ours: $ours examples/s in all"
    if [ -n "$tf" ]; then
        read -r p0 p1 p2 < <(python3 -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
        flag=""; [ $mode = sync ] && flag="--sync"
        (cd benchmarks/anchors && "$tf" tf_cluster_bench.py ps --task 0 --ps 127.0.0.1:$p0 --workers 127.0.0.1:$p1,127.0.0.1:$p2 $flag) > /dev/null 2>&1 &
        pids+=($!)
        for i in 0 1; do
            # Sync: a step needs both workers' gradients, so the chief would wait for ever once the other
            # worker stopped; the other one gets more steps than the chief and is stopped after it.
            n=$steps; [ $mode = sync ] && [ $i = 1 ] && n=$((steps + 200))
            (cd benchmarks/anchors && timeout 300 "$tf" tf_cluster_bench.py worker --task $i --ps 127.0.0.1:$p0 --workers 127.0.0.1:$p1,127.0.0.1:$p2 \
                --steps "$n" $flag) > "$work/tf-w$i-$mode" 2>/dev/null &
            pids+=($!)
        done
        if [ $mode = sync ]; then
            wait "${pids[@]: -2:1}" || true
            kill "${pids[@]: -1}" 2>/dev/null || true
        fi
        wait "${pids[@]: -2}" || true
        kill "${pids[@]: -3:1}" 2>/dev/null || true
        if [ -n "$(rate "$work/tf-w0-$mode")" ] && [ -n "$(rate "$work/tf-w1-$mode")" ]; then
            theirs=$(for i in 0 1; do rate "$work/tf-w$i-$mode"; done | sum)
            echo "TensorFlow: $theirs examples/s in all"
            awk -v a="$ours" -v b="$theirs" 'BEGIN {if (b > 0) printf "ratio: %.2fx\n", a / b}'
        elif [ $mode = sync ] && [ -n "$(rate "$work/tf-w0-$mode")" ]; then
            # SyncReplicasOptimizer: the other worker ran longer and was stopped after the chief. Every step
            # takes one batch from each worker, so all of them together make 2 x the chief's rate.
            theirs=$(awk -v r="$(rate "$work/tf-w0-$mode")" 'BEGIN {printf "%.0f", 2 * r}')
            echo "TensorFlow: $theirs examples/s in all (2 x the chief's rate: every sync step takes a batch from each worker)"
            awk -v a="$ours" -v b="$theirs" 'BEGIN {if (b > 0) printf "ratio: %.2fx\n", a / b}'
        else
            echo "TensorFlow: a worker did not finish within 300 s; its last lines:"
            for i in 0 1; do tail -n 2 "$work/tf-w$i-$mode"; done
        fi
    fi
done
