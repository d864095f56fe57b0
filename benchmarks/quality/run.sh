#!/usr/bin/env bash
# Held-out quality of `worker` with --scaling auto, relative and global (and relative as before the
# validation split: no validation part, no early stopping), 3 seeds each, on CO2 (horizon 12), sunspots
# (horizon 6) and a stationary monthly series from stationary.py (horizon 12). One run at a time.
# Prints one tab-separated line per run; pass the release worker's path (default .build/release/worker).
# SERIES="co2 sunspots" and SETTINGS="auto" pick a subset (default: all); STEPS (3000) and SEEDS ("0 1 2").
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
worker=${1:-$root/.build/release/worker}
steps=${STEPS:-3000}
sst=$(mktemp --suffix=.csv)
trap 'rm -f "$sst"' EXIT
python3 "$root/benchmarks/quality/stationary.py" "$sst"
printf "series\tseed\tsetting\tscaling\tsteps\tratio_naive\tratio_seasonal_naive\tratio_window_mean\n"
for spec in "co2|--data co2" "sunspots|--data sunspots --horizon 6" "stationary|--data $sst --column sst"; do
    name=${spec%%|*}
    [[ " ${SERIES:-co2 sunspots stationary} " == *" $name "* ]] || continue
    read -r -a args <<<"${spec#*|}"
    for seed in ${SEEDS:-0 1 2}; do
        for setting in ${SETTINGS:-auto relative global before}; do
            case $setting in
            before) extra=(--scaling relative --patience 0 --validation-fraction 0) ;;
            *) extra=(--scaling "$setting") ;;
            esac
            out=$("$worker" "${args[@]}" --steps "$steps" --seed "$seed" "${extra[@]}" 2>/dev/null | grep -v '^step')
            chosen=$(echo "$out" | sed -n 's/^scaling auto: chose \([a-z-]*\),.*/\1/p; s/^scaling \([a-z-]*\) (given).*/\1/p' | head -1)
            trained=$(echo "$out" | sed -n 's/^trained \([0-9]*\) steps.*/\1/p')
            ratio=$(echo "$out" | sed -n 's/^held-out MSE .*ratio \([0-9.]*\) over.*/\1/p')
            seasonal=$(echo "$out" | sed -n 's/^held-out vs seasonal-naive.*ratio \([0-9.]*\)$/\1/p')
            mean=$(echo "$out" | sed -n 's/^held-out vs window mean.*ratio \([0-9.]*\)$/\1/p')
            printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$name" "$seed" "$setting" "$chosen" "$trained" "$ratio" "${seasonal:--}" "$mean"
            [ "$setting" = auto ] && echo "$out" | grep '^scaling auto' | sed 's/^/# /' >&2
        done
    done
done
