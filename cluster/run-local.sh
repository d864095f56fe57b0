#!/usr/bin/env bash
# The local cluster: P parameter servers and W workers on loopback, on the built-in data.
#
#   cluster/run-local.sh [--servers P] [--workers W] [--steps N] [--mode async|sync] [--data NAME|CSV]
#                        [--column C] [--bin DIR] [--no-build] [--restart-failed] [--kill-at STEP ROLE INDEX]
#                        [--serve PORT]
#                        [-- extra worker options]
#
# Builds the release binaries (unless --no-build), starts the servers on free ports (checkpointing every
# 200 updates), starts the workers with their task index, prefixes every line of output with its process,
# and at the end evaluates the servers' checkpoint on the held-out split next to the naive forecast.
#   --restart-failed           restart a server or worker that dies, as Kubernetes' restart policy would
#                              (a server on its port, from its checkpoint; a worker with its index), 5 times
#                              at most each; without it, the first failure stops the whole cluster.
#   --kill-at STEP ROLE INDEX  kill -9 one process (ROLE ps or worker) once worker 0 has reached STEP, to
#                              watch a recovery (servers come back with --restart-failed; workers reconnect).
#   --serve PORT               also run `forecast --serve` on PORT from the servers' checkpoint directory: it
#                              answers POST /v1/forecast as soon as a complete set of checkpoints exists and
#                              swaps in newer ones while training goes on; it keeps serving after the run
#                              until Ctrl-C.
# Every wait is bounded. Run files go to runs/<timestamp>/. Ctrl-C stops every process.
set -euo pipefail
cd "$(dirname "$0")/.."

servers=2 workers=2 steps=2000 mode=async data=co2 column="" build=1 bin=".build/release" extra=() serve_port=""
restart=0 kill_step="" kill_role="" kill_index=""
usage() { echo "run-local.sh: $*" >&2; exit 64; }
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) servers=${2-}; shift 2 || usage "--servers needs a value" ;;
        --workers) workers=${2-}; shift 2 || usage "--workers needs a value" ;;
        --steps) steps=${2-}; shift 2 || usage "--steps needs a value" ;;
        --mode) mode=${2-}; shift 2 || usage "--mode needs a value" ;;
        --data) data=${2-}; shift 2 || usage "--data needs a value" ;;
        --column) column=${2-}; shift 2 || usage "--column needs a value" ;;
        --bin) bin=${2-}; build=0; shift 2 || usage "--bin needs a value" ;;
        --no-build) build=0; shift ;;
        --restart-failed) restart=1; shift ;;
        --serve) serve_port=${2-}; shift 2 || usage "--serve needs a port" ;;
        --kill-at) kill_step=${2-}; kill_role=${3-}; kill_index=${4-}; shift 4 || usage "--kill-at needs STEP ROLE INDEX" ;;
        --) shift; extra=("$@"); break ;;
        -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) usage "unknown option $1 (see --help)" ;;
    esac
done
[[ "$servers" =~ ^[1-9][0-9]?$ ]] || usage "--servers must be 1..99, got '$servers'"
[[ "$workers" =~ ^[1-9][0-9]?$ ]] || usage "--workers must be 1..99, got '$workers'"
[[ "$steps" =~ ^[0-9]+$ ]] || usage "--steps must be a whole number, got '$steps'"
[[ "$mode" = async || "$mode" = sync ]] || usage "--mode must be async or sync, got '$mode'"
[ -z "$serve_port" ] || [[ "$serve_port" =~ ^[1-9][0-9]{0,4}$ && "$serve_port" -le 65535 ]] || usage "--serve must be a port in 1..65535, got '$serve_port'"
if [ -n "$kill_step" ]; then
    [[ "$kill_step" =~ ^[0-9]+$ ]] || usage "--kill-at STEP must be a whole number, got '$kill_step'"
    [[ "$kill_role" = ps || "$kill_role" = worker ]] || usage "--kill-at ROLE must be ps or worker, got '$kill_role'"
    [[ "$kill_index" =~ ^[0-9]+$ ]] || usage "--kill-at INDEX must be a whole number, got '$kill_index'"
    limit=$([ "$kill_role" = ps ] && echo "$servers" || echo "$workers")
    [ "$kill_index" -lt "$limit" ] || usage "--kill-at: there is no $kill_role $kill_index (0..$((limit - 1)))"
fi

if [ "$build" = 1 ]; then
    scripts/setup.sh
    swift build -c release --product ps-server >&2
    swift build -c release --product worker >&2
    [ -z "$serve_port" ] || swift build -c release --product forecast >&2
fi
[ -x "$bin/ps-server" ] && [ -x "$bin/worker" ] || { echo "no ps-server/worker binaries in $bin: build first" >&2; exit 1; }

run="runs/$(date +%Y%m%d-%H%M%S)-$$"
mkdir -p "$run/checkpoint"
data_args=(--data "$data")
[ -n "$column" ] && data_args+=(--column "$column")

declare -A pid restarts
alive() { kill -0 "$1" 2>/dev/null; }
cleanup() {
    trap - INT TERM EXIT
    # SIGTERM (servers write their final checkpoint, workers say done), then up to 30 s for them to exit.
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 1 300); do
        any=0
        for p in "${pid[@]}"; do alive "$p" && any=1; done
        [ "$any" = 0 ] && break
        sleep 0.1
    done
    for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap 'echo "stopping every process (servers write their final checkpoints)" >&2; cleanup; report_final; exit 130' INT TERM
trap cleanup EXIT

# After a stop: which servers wrote their final checkpoint (their log lines say so).
report_final() {
    local n
    n=$(grep -c "reason=final" "$run"/ps-*.log 2>/dev/null | awk -F: '{ s += $2 } END { print s + 0 }')
    echo "final checkpoints written: $n of $servers servers (in $run/checkpoint)" >&2
}

# Ctrl-C reaches every process in the terminal's foreground group. The log filters ignore it ("trap ''"
# survives exec), so they keep carrying the servers' last lines (the final checkpoint) instead of dying and
# leaving the servers to be killed by SIGPIPE as they log.
start_server() {  # index port
    local i=$1 port=$2
    "$bin/ps-server" --port "$port" --port-file "$run/ps-$i.port" --name "ps-$i" --mode "$mode" \
        --num-workers "$workers" --checkpoint-dir "$run/checkpoint" --checkpoint-every 200 \
        > >(trap '' INT; tee -a "$run/ps-$i.log" | sed -u "s/^/[ps $i] /") 2>&1 &
    pid[ps-$i]=$!
    echo "$!" >> "$run/pids"
}
start_worker() {  # index
    local i=$1
    "$bin/worker" --ps "$ps_list" --task-index "$i" --num-workers "$workers" --steps "$steps" \
        "${data_args[@]}" --log-every 250 "${extra[@]}" > >(trap '' INT; tee "$run/worker-$i.log" | sed -u "s/^/[worker $i] /") 2>&1 &
    pid[worker-$i]=$!
    echo "$!" >> "$run/pids"
}

# Servers on free ports: each writes the port it bound.
endpoints=()
for i in $(seq 0 $((servers - 1))); do start_server "$i" 0; done
for i in $(seq 0 $((servers - 1))); do
    for _ in $(seq 1 100); do
        [ -s "$run/ps-$i.port" ] && break
        alive "${pid[ps-$i]}" || { echo "ps $i exited before listening; see its output above" >&2; exit 1; }
        sleep 0.1
    done
    [ -s "$run/ps-$i.port" ] || { echo "ps $i did not start listening within 10 s; see its output above" >&2; exit 1; }
    endpoints+=("127.0.0.1:$(cat "$run/ps-$i.port")")
done
ps_list=$(IFS=,; echo "${endpoints[*]}")
echo "servers: $ps_list   workers: $workers   mode: $mode   steps: $steps   data: $data   run: $run"
if [ -n "$serve_port" ]; then
    [ -x "$bin/forecast" ] || { echo "no forecast binary in $bin: build it first" >&2; exit 1; }
    "$bin/forecast" --serve --port "$serve_port" --restore "$run/checkpoint" "${data_args[@]}" \
        > >(sed -u "s/^/[serve] /") 2>&1 &
    pid[serve]=$!
    echo "$!" >> "$run/pids"
    echo "serving forecasts on http://127.0.0.1:$serve_port/v1/forecast (POST; /metrics, /healthz, /readyz)"
fi
for i in $(seq 0 $((workers - 1))); do start_worker "$i"; done

# Watch: workers to finish, servers to exit after them; restart or stop on a failure; inject the kill.
killed=0
done_workers=()
deadline=$((SECONDS + 3600 + steps))
while :; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "the run did not finish within $((deadline)) s" >&2; exit 1; }
    if [ -n "$kill_step" ] && [ "$killed" = 0 ] && grep -q "^step \([0-9]*\)/" "$run/worker-0.log" 2>/dev/null; then
        reached=$(grep -o "^step [0-9]*" "$run/worker-0.log" | tail -n 1 | cut -d' ' -f2)
        if [ "${reached:-0}" -ge "$kill_step" ]; then
            victim="$kill_role-$kill_index"
            echo "kill -9 $kill_role $kill_index at worker 0's step $reached" >&2
            kill -9 "${pid[$victim]}" 2>/dev/null || true
            killed=1
        fi
    fi
    running_workers=0
    for i in $(seq 0 $((workers - 1))); do
        p=${pid[worker-$i]}
        if alive "$p"; then running_workers=$((running_workers + 1)); continue; fi
        [[ " ${done_workers[*]-} " == *" $i "* ]] && continue
        status=0; wait "$p" || status=$?
        if [ "$status" = 0 ]; then done_workers+=("$i"); continue; fi
        if [ "$restart" = 1 ] && [ "${restarts[worker-$i]:-0}" -lt 5 ]; then
            restarts[worker-$i]=$(( ${restarts[worker-$i]:-0} + 1 ))
            echo "worker $i exited with $status: restarting it (restart ${restarts[worker-$i]} of 5)" >&2
            start_worker "$i"; running_workers=$((running_workers + 1))
        else
            echo "worker $i failed with exit $status: stopping the cluster" >&2; exit 1
        fi
    done
    for i in $(seq 0 $((servers - 1))); do
        p=${pid[ps-$i]}
        alive "$p" && continue
        status=0; wait "$p" 2>/dev/null || status=$?
        [ "$status" = 0 ] && [ "$running_workers" = 0 ] && continue
        if [ "$status" = 0 ]; then continue; fi
        if [ "$restart" = 1 ] && [ "${restarts[ps-$i]:-0}" -lt 5 ]; then
            restarts[ps-$i]=$(( ${restarts[ps-$i]:-0} + 1 ))
            echo "ps $i exited with $status: restarting it on its port from its checkpoint (restart ${restarts[ps-$i]} of 5)" >&2
            start_server "$i" "$(cat "$run/ps-$i.port")"
        else
            echo "ps $i failed with exit $status: stopping the cluster" >&2; exit 1
        fi
    done
    if [ "$running_workers" = 0 ]; then
        # Servers exit by themselves once every worker is done, after writing their checkpoints.
        for _ in $(seq 1 300); do
            any=0
            for i in $(seq 0 $((servers - 1))); do alive "${pid[ps-$i]}" && any=1; done
            [ "$any" = 0 ] && break
            sleep 0.1
        done
        [ "$any" = 0 ] || { echo "servers did not exit within 30 s of the last worker" >&2; exit 1; }
        break
    fi
    sleep 0.2
done

report_final
# Each server's share of the model (the memory line it logs at its end), and how far each is from the mean.
shares=""
for i in $(seq 0 $((servers - 1))); do
    b=$(grep -o 'value.bytes=[0-9]*' "$run/ps-$i.log" 2>/dev/null | tail -n 1 | cut -d= -f2)
    shares="$shares ${b:-0}"
done
echo "$shares" | awk '{ for (i = 1; i <= NF; i++) s += $i; m = s / NF; line = "bytes per server:";
    worst = 0; for (i = 1; i <= NF; i++) { line = line sprintf(" ps %d %.2f MB", i - 1, $i / 1e6);
    d = m > 0 ? ($i - m) / m * 100 : 0; if (d < 0) d = -d; if (d > worst) worst = d }
    printf "%s; mean %.2f MB, each within %.1f%% of it\n", line, m / 1e6, worst }'
files=$(find "$run/checkpoint" -name '*.safetensors' | wc -l)
[ "$files" -gt 0 ] || { echo "servers wrote no checkpoint in $run/checkpoint" >&2; exit 1; }
echo "evaluating the servers' checkpoint ($run/checkpoint) on the held-out split:"
"$bin/worker" --restore "$run/checkpoint" --steps 0 "${data_args[@]}" "${extra[@]}" | grep -E "held-out|ratio" || {
    echo "the evaluation of $run/checkpoint failed" >&2; exit 1; }
if [ -n "$serve_port" ]; then
    echo "training done; still serving on port $serve_port (the final checkpoints): Ctrl-C stops it"
    # A loop, not `wait`: the INT/TERM trap then runs within half a second and stops the server too.
    while alive "${pid[serve]}"; do sleep 0.5; done
fi
