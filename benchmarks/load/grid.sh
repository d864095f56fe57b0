#!/usr/bin/env bash
# The capacity grid of issue 17 (item 3), sized for a 2-core machine: ps-load against real ps-server processes.
#
#   benchmarks/load/grid.sh                  build (release), measure bandwidth, run the grid, plot
#   benchmarks/load/grid.sh --no-build       use the release binaries already built
#   benchmarks/load/grid.sh --quick          a second of measuring per point (a smoke run of the whole grid)
#   benchmarks/load/grid.sh --name NAME      write benchmarks/results/NAME.csv (default ps-load)
#
# Writes benchmarks/results/ps-load.csv (one row per server per point), ps-load-bandwidth.csv, and the plots
# (benchmarks/load/plot.py). Each point starts its own servers and stops them; Ctrl-C stops the point running
# (ps-load cleans up its servers) and the grid.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=1
warmup=1.5
window=4
out_name=ps-load
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) build=0; shift ;;
        --quick) warmup=0.5; window=1; shift ;;
        --name) [ $# -ge 2 ] || { echo "grid.sh: --name takes a file stem" >&2; exit 64; }; out_name=$2; shift 2 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        *) echo "grid.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done

if [ "$build" = 1 ]; then
    swift build -c release --product ps-server
    swift build -c release --product ps-load
fi
bin=.build/release
results=benchmarks/results
out=$results/$out_name.csv
mkdir -p "$results"

"$bin/ps-load" bandwidth --csv "$results/$out_name-bandwidth.csv"
# The server applies on one thread: its ceiling is the single-thread triad.
triad=$(awk -F, 'NR == 2 { print $4 }' "$results/$out_name-bandwidth.csv")

rm -f "$out"
trap 'echo "grid.sh: interrupted" >&2; exit 130' INT TERM
point() {
    echo "== $*" >&2
    "$bin/ps-load" run --warmup "$warmup" --window "$window" --triad "$triad" --csv "$out" "$@" \
        || echo "grid.sh: point failed: $*" >&2
}

start=$(date +%s)
# A 280-parameter model: what a message costs a server whatever its size (the scale model's fixed part).
for n in 1 16; do point --mode async --hidden 4 --workers "$n"; done
for n in 1 4 16 64 256; do point --mode async --model 58k --workers "$n"; done
for n in 1 4 16 64 256; do point --mode async --model 1m --workers "$n"; done
# A 15M update takes a server about a tenth of a second: a longer window, for enough of them to count.
for n in 1 4 16; do point --mode async --model 15m --workers "$n" --window "$((window * 2))"; done
# The same with glibc's malloc told to keep big blocks (the server's 59 MB message buffers) instead of mapping
# and unmapping them for every message: what page faults cost.
malloc_env=(--server-env MALLOC_MMAP_THRESHOLD_=536870912 --server-env MALLOC_TRIM_THRESHOLD_=1073741824)
for n in 1 4 16; do
    point --mode async --model 15m --workers "$n" --window "$((window * 2))" "${malloc_env[@]}" --label "malloc kept"
done
for n in 1 4 16 64 256; do point --mode sync --model 58k --workers "$n"; done
# Servers: the 1M model split into one part per server, against whole variables placed greedily (P = 1 is the
# one-server point above).
for p in 2 4; do point --mode async --model 1m --workers 16 --servers "$p" --partition; done
for p in 2 4; do point --mode async --model 1m --workers 16 --servers "$p"; done
for p in 2 4; do point --mode async --model 1m --workers 64 --servers "$p" --partition; done
echo "grid.sh: $(( $(date +%s) - start )) s; rows in $out" >&2

python3 benchmarks/load/plot.py "$out" "$results/$out_name-bandwidth.csv" --out "$results" --stem "$out_name"
