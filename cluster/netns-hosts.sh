#!/usr/bin/env bash
# A cluster of separate "hosts" on one machine: every ps-server and worker in its own network namespace,
# joined by veth pairs to a bridge, on the private test subnet 10.213.0.0/24. Needs root.
#
#   cluster/netns-hosts.sh [--servers P] [--workers W] [--bin DIR] [--steps N] [--link-down SECONDS]
#                          [--timeout SECONDS] [--keep-logs]
#
# Each namespace gets /etc/netns/<ns>/hosts with TFJob-style names (scoped-trainer-ps-0.default.svc, ...),
# which `ip netns exec` mounts over /etc/hosts, so processes find each other by name. CURVE keys come from
# `ps-server --generate-curve-keys`: the servers' pair, one pair per worker, and an authorized_keys file.
# Processes get TF_CONFIG and the CURVE flags only; NETNS_EXPLICIT_FLAGS=1 adds the equivalent explicit
# flags (--port, --bind, --ps, --task-index, --num-workers) for binaries that do not read TF_CONFIG yet,
# and then leaves out the flags those binaries lack (--curve-authorized-keys, worker --curve-secret-file).
#
# --link-down S takes server 0's link down for S seconds once the workers are training, brings it back,
# and reports how long after the link came back the workers' progress resumed.
#
# Prints each process's exit code and a summary: examples/s in all, bytes per step per worker, wall time.
# Everything it made (namespaces, veths, the bridge, /etc/netns/<ns>, temporary files, processes) is
# removed on success, failure, Ctrl-C or SIGTERM. Every wait is bounded.
set -euo pipefail

servers=2 workers=2 bin="" steps="" link_down=0 limit=300 keep_logs=0
job=scoped-trainer namespace=default port=2222
while [ $# -gt 0 ]; do
    case "$1" in
        --servers) servers=${2-}; shift 2 || { echo "netns-hosts.sh: --servers needs a value" >&2; exit 64; } ;;
        --workers) workers=${2-}; shift 2 || { echo "netns-hosts.sh: --workers needs a value" >&2; exit 64; } ;;
        --bin) bin=${2-}; shift 2 || { echo "netns-hosts.sh: --bin needs a value" >&2; exit 64; } ;;
        --steps) steps=${2-}; shift 2 || { echo "netns-hosts.sh: --steps needs a value" >&2; exit 64; } ;;
        --link-down) link_down=${2-}; shift 2 || { echo "netns-hosts.sh: --link-down needs a value" >&2; exit 64; } ;;
        --timeout) limit=${2-}; shift 2 || { echo "netns-hosts.sh: --timeout needs a value" >&2; exit 64; } ;;
        --keep-logs) keep_logs=1; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "netns-hosts.sh: unknown option '$1' (see --help)" >&2; exit 64 ;;
    esac
done

usage_error() { echo "netns-hosts.sh: $*" >&2; exit 64; }
[[ "$servers" =~ ^[1-9][0-9]*$ ]] && [ "$servers" -le 50 ] || usage_error "--servers must be 1..50, got '$servers'"
[[ "$workers" =~ ^[1-9][0-9]*$ ]] && [ "$workers" -le 100 ] || usage_error "--workers must be 1..100, got '$workers'"
[[ "$link_down" =~ ^[0-9]+$ ]] || usage_error "--link-down must be whole seconds, got '$link_down'"
[[ "$limit" =~ ^[1-9][0-9]*$ ]] || usage_error "--timeout must be a positive number of seconds, got '$limit'"
# A link-down run needs training that outlasts the outage; a plain run only needs to be short.
if [ -z "$steps" ]; then if [ "$link_down" -gt 0 ]; then steps=20000; else steps=300; fi; fi
[[ "$steps" =~ ^[1-9][0-9]*$ ]] || usage_error "--steps must be a positive integer, got '$steps'"
explicit=${NETNS_EXPLICIT_FLAGS:-0}

root="$(cd "$(dirname "$0")/.." && pwd)"
[ -n "$bin" ] || bin="$root/.build/release"
[ -x "$bin/ps-server" ] && [ -x "$bin/worker" ] || {
    echo "netns-hosts.sh: no ps-server and worker in $bin; build them (swift build -c release --product ps-server," \
        "then --product worker) or pass --bin DIR" >&2
    exit 1
}
bin="$(cd "$bin" && pwd)"

# Network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2.
command -v ip >/dev/null || { echo "netns-hosts.sh: cannot create network namespaces: 'ip' (iproute2) is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "netns-hosts.sh: cannot create network namespaces: run as root (needs CAP_SYS_ADMIN and CAP_NET_ADMIN)" >&2; exit 1; }

# --- everything this run makes, so that cleanup removes exactly that ---------------------------------------
run="st$(od -An -N2 -tx2 /dev/urandom | tr -d ' \n')"   # per-run prefix: namespaces and veths are named $run*
tmp="$(mktemp -d "/tmp/netns-hosts.$run.XXXXXX")"
namespaces=()       # created namespaces, in order
netns_dirs=()       # created /etc/netns/<ns> directories
made_etc_netns=0    # whether /etc/netns itself was created here
pids=()             # processes started here (timeout wrappers; each forwards signals to its program)
timer_pid=""        # the link-down timer
cleaned=0

cleanup() {
    [ "$cleaned" = 1 ] && return
    cleaned=1
    trap - EXIT INT TERM
    [ -n "$timer_pid" ] && kill "$timer_pid" 2>/dev/null || true
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do
        alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    # Anything still running inside our own namespaces was started by this run.
    for ns in "${namespaces[@]}"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    done
    # Deleting a namespace deletes its veth end (and so the pair) and the bridge inside it.
    for ns in "${namespaces[@]}"; do
        timeout 10 ip netns del "$ns" 2>/dev/null || echo "netns-hosts.sh: could not delete namespace $ns" >&2
    done
    for d in "${netns_dirs[@]}"; do rm -rf "$d"; done
    [ "$made_etc_netns" = 1 ] && rmdir /etc/netns 2>/dev/null || true
    if [ "$keep_logs" = 1 ]; then echo "logs kept in $tmp"; else rm -rf "$tmp"; fi
}
trap 'cleanup' EXIT
trap 'echo "netns-hosts.sh: interrupted: stopping every process and removing the namespaces" >&2; cleanup; exit 130' INT
trap 'echo "netns-hosts.sh: terminated: stopping every process and removing the namespaces" >&2; cleanup; exit 143' TERM

# --- the network ------------------------------------------------------------------------------------------
add_ns() {
    local err
    if ! err=$(timeout 10 ip netns add "$1" 2>&1); then
        echo "netns-hosts.sh: cannot create network namespace $1: ${err:-timed out}" >&2
        exit 1
    fi
    namespaces+=("$1")
    ip -n "$1" link set lo up
}

bridge_ns="$run-br"
add_ns "$bridge_ns"
if ! err=$(ip -n "$bridge_ns" link add br0 type bridge 2>&1); then
    echo "netns-hosts.sh: cannot create a bridge inside namespace $bridge_ns: $err" >&2
    exit 1
fi
ip -n "$bridge_ns" link set br0 up

ps_ns=() ps_ip=() ps_veth=() wk_ns=() wk_ip=()
for ((i = 0; i < servers; i++)); do ps_ns+=("$run-ps$i"); ps_ip+=("10.213.0.$((10 + i))"); ps_veth+=("${run}p$i"); done
for ((i = 0; i < workers; i++)); do wk_ns+=("$run-wk$i"); wk_ip+=("10.213.0.$((100 + i))"); done

# One host: a namespace whose eth0 is one end of a veth pair; the other end ($2) is a port of the bridge.
add_host() { # ns veth-name address
    add_ns "$1"
    ip -n "$bridge_ns" link add "$2" type veth peer name eth0 netns "$1"
    ip -n "$bridge_ns" link set "$2" master br0 up
    ip -n "$1" addr add "$3/24" dev eth0
    ip -n "$1" link set eth0 up
}
for ((i = 0; i < servers; i++)); do add_host "${ps_ns[$i]}" "${ps_veth[$i]}" "${ps_ip[$i]}"; done
for ((i = 0; i < workers; i++)); do add_host "${wk_ns[$i]}" "${run}w$i" "${wk_ip[$i]}"; done

# TFJob-style names in every namespace's /etc/hosts.
name_of() { echo "$job-$1-$2.$namespace.svc"; }
{
    echo "127.0.0.1 localhost"
    for ((i = 0; i < servers; i++)); do echo "${ps_ip[$i]} $(name_of ps "$i") $job-ps-$i"; done
    for ((i = 0; i < workers; i++)); do echo "${wk_ip[$i]} $(name_of worker "$i") $job-worker-$i"; done
} > "$tmp/hosts"
[ -d /etc/netns ] || { mkdir -p /etc/netns; made_etc_netns=1; }
for ns in "${ps_ns[@]}" "${wk_ns[@]}"; do
    mkdir "/etc/netns/$ns"
    netns_dirs+=("/etc/netns/$ns")
    cp "$tmp/hosts" "/etc/netns/$ns/hosts"
done

# Every worker resolves every server's name to its address before anything starts.
for ((w = 0; w < workers; w++)); do
    for ((i = 0; i < servers; i++)); do
        got=$(timeout 10 ip netns exec "${wk_ns[$w]}" getent hosts "$(name_of ps "$i")" | awk '{ print $1 }') || true
        [ "$got" = "${ps_ip[$i]}" ] || {
            echo "netns-hosts.sh: in worker $w's namespace $(name_of ps "$i") resolves to '$got', not ${ps_ip[$i]}" >&2
            exit 1
        }
    done
done
echo "network: bridge in $bridge_ns, $servers servers at ${ps_ip[*]}, $workers workers at ${wk_ip[*]} (10.213.0.0/24)"

# --- CURVE keys -------------------------------------------------------------------------------------------
keys="$tmp/keys"
mkdir -m 700 "$keys"
timeout 30 "$bin/ps-server" --generate-curve-keys "$keys/server" >/dev/null
echo "# workers' CURVE public keys" > "$keys/authorized_keys"
for ((i = 0; i < workers; i++)); do
    timeout 30 "$bin/ps-server" --generate-curve-keys "$keys/worker-$i" >/dev/null
    cat "$keys/worker-$i.public" >> "$keys/authorized_keys"
done

# --- TF_CONFIG --------------------------------------------------------------------------------------------
ps_list=() wk_list=()
for ((i = 0; i < servers; i++)); do ps_list+=("$(name_of ps "$i"):$port"); done
for ((i = 0; i < workers; i++)); do wk_list+=("$(name_of worker "$i"):$port"); done
json_list() { local IFS=,; local q=("${@/#/\"}"); q=("${q[@]/%/\"}"); echo "[${q[*]}]"; }
cluster_json="{\"ps\":$(json_list "${ps_list[@]}"),\"worker\":$(json_list "${wk_list[@]}")}"
tf_config() { echo "{\"cluster\":$cluster_json,\"task\":{\"type\":\"$1\",\"index\":$2}}"; }

# Lines of a process's output, each stamped with the wall-clock time it arrived.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }

mkdir "$tmp/logs" "$tmp/checkpoints"
start() { # ns log program args...: runs in the namespace, bounded by --timeout; the pid goes into pids
    local ns=$1 log=$2
    shift 2
    ip netns exec "$ns" timeout -k 5 "$limit" stdbuf -oL -eL "$@" > >(stamp > "$log") 2>&1 &
    pids+=($!)
}

t0=$EPOCHREALTIME
ps_pids=()
for ((i = 0; i < servers; i++)); do
    mkdir "$tmp/checkpoints/ps-$i"
    args=(--checkpoint-dir "$tmp/checkpoints/ps-$i" --curve-secret-file "$keys/server.secret")
    if [ "$explicit" = 1 ]; then
        args+=(--port "$port" --bind 0.0.0.0 --name "ps-$i")
    else
        args+=(--curve-authorized-keys "$keys/authorized_keys")
    fi
    start "${ps_ns[$i]}" "$tmp/logs/ps-$i.log" env TF_CONFIG="$(tf_config ps "$i")" "$bin/ps-server" "${args[@]}"
    ps_pids+=("${pids[-1]}")
done

# Workers start once every server accepts connections on its port (bounded).
for ((i = 0; i < servers; i++)); do
    up=0
    for _ in $(seq 1 100); do
        if timeout 2 ip netns exec "${wk_ns[0]}" bash -c "exec 3<>/dev/tcp/${ps_ip[$i]}/$port" 2>/dev/null; then up=1; break; fi
        kill -0 "${ps_pids[$i]}" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$up" = 0 ]; then
        how="is not listening"
        if ! kill -0 "${ps_pids[$i]}" 2>/dev/null; then rc=0; wait "${ps_pids[$i]}" || rc=$?; how="exited with code $rc"; fi
        echo "netns-hosts.sh: server $i $how on $(name_of ps "$i"):$port; its output:" >&2
        sed 's/^[0-9.]* /  [ps '"$i"'] /' "$tmp/logs/ps-$i.log" | tail -20 >&2
        exit 1
    fi
done

log_every=$((steps / 40)); [ "$log_every" -ge 1 ] || log_every=1
[ "$link_down" -gt 0 ] || log_every=1000
wk_pids=()
for ((i = 0; i < workers; i++)); do
    args=(--data synthetic --steps "$steps" --batch 4 --window 6 --horizon 3 --hidden 8 --hidden2 5
        --log-every "$log_every" --curve-server-key "$keys/server.public")
    if [ "$explicit" = 1 ]; then
        args+=(--ps "$(IFS=,; echo "${ps_list[*]}")" --task-index "$i" --num-workers "$workers")
    else
        args+=(--curve-secret-file "$keys/worker-$i.secret")
        [ "$link_down" -gt 0 ] && args+=(--recovery-timeout $((link_down + 60)))
    fi
    start "${wk_ns[$i]}" "$tmp/logs/worker-$i.log" env TF_CONFIG="$(tf_config worker "$i")" "$bin/worker" "${args[@]}"
    wk_pids+=("${pids[-1]}")
done
echo "started $servers servers and $workers workers (steps $steps; TF_CONFIG$([ "$explicit" = 1 ] && echo " + explicit flags"); CURVE)"

# --- the link-down experiment -----------------------------------------------------------------------------
if [ "$link_down" -gt 0 ]; then
    (
        # Wait (bounded) until some worker reports progress, so the outage hits training, not start-up.
        for _ in $(seq 1 600); do
            grep -qs ' step [0-9]' "$tmp"/logs/worker-*.log && break
            sleep 0.1
        done
        echo "$EPOCHREALTIME" > "$tmp/link-down-at"
        ip -n "$bridge_ns" link set "${ps_veth[0]}" down
        echo "link down: ${ps_veth[0]} (server 0, ${ps_ip[0]}) for $link_down s"
        sleep "$link_down"
        ip -n "$bridge_ns" link set "${ps_veth[0]}" up
        echo "$EPOCHREALTIME" > "$tmp/link-up-at"
        echo "link up: ${ps_veth[0]}"
    ) &
    timer_pid=$!
fi

# --- wait: workers first, then servers (which exit by themselves once every worker is done) ---------------
declare -A code
wait_for() { # pid key
    local rc=0
    wait "$1" || rc=$?
    code[$2]=$rc
}
for ((i = 0; i < workers; i++)); do wait_for "${wk_pids[$i]}" "worker-$i"; done
t_workers=$EPOCHREALTIME
[ -n "$timer_pid" ] && { wait "$timer_pid" 2>/dev/null || true; timer_pid=""; }
# Servers get 30 s after the last worker to notice, checkpoint and exit; then they are stopped. When a worker
# failed, it never said goodbye, so the servers are stopped (SIGTERM: checkpoint, exit) after 3 s.
grace=30
for ((i = 0; i < workers; i++)); do [ "${code[worker-$i]}" = 0 ] || grace=3; done
deadline=$((SECONDS + grace))
for ((i = 0; i < servers; i++)); do
    while kill -0 "${ps_pids[$i]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if kill -0 "${ps_pids[$i]}" 2>/dev/null; then
        echo "netns-hosts.sh: server $i still running $grace s after the last worker; stopping it (SIGTERM)" >&2
        kill -TERM "${ps_pids[$i]}" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "${ps_pids[$i]}" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "${ps_pids[$i]}" 2>/dev/null || true
    fi
    wait_for "${ps_pids[$i]}" "ps-$i"
done
t_end=$EPOCHREALTIME

# --- report -----------------------------------------------------------------------------------------------
failed=0
line="exit codes:"
for ((i = 0; i < servers; i++)); do line+=" ps-$i=${code[ps-$i]}"; [ "${code[ps-$i]}" = 0 ] || failed=1; done
for ((i = 0; i < workers; i++)); do line+=" worker-$i=${code[worker-$i]}"; [ "${code[worker-$i]}" = 0 ] || failed=1; done
echo "$line"
if [ "$failed" = 1 ]; then
    for f in "$tmp"/logs/*.log; do
        p=$(basename "$f" .log)
        [ "${code[$p]}" = 0 ] && continue
        [ "${code[$p]}" = 124 ] && echo "$p ran past --timeout $limit s"
        echo "last lines of $p:"
        sed 's/^[0-9.]* /  /' "$f" | tail -15
    done
fi

awk -v t0="$t0" -v tw="$t_workers" -v te="$t_end" -v workers="$workers" -v servers="$servers" '
    / trained [0-9]+ steps in / { for (i = 1; i <= NF; i++) if ($i == "examples/s,") { eps += $(i - 1); n++ } }
    / traffic: [0-9.]+ bytes per step/ { for (i = 1; i <= NF; i++) if ($i == "traffic:") { bytes += $(i + 1); m++ } }
    END {
        printf "summary: %d servers, %d workers; examples/s in all %s; bytes per step per worker %s; " \
            "workers done after %.1f s, everything after %.1f s\n", servers, workers,
            (n == workers ? sprintf("%.0f", eps) : sprintf("n/a (%d of %d workers reported)", n, workers)),
            (m > 0 ? sprintf("%.0f", bytes / m) : "n/a"), tw - t0, te - t0
    }' "$tmp"/logs/worker-*.log

if [ "$link_down" -gt 0 ]; then
    if [ -s "$tmp/link-down-at" ] && [ -s "$tmp/link-up-at" ]; then
        down_at=$(cat "$tmp/link-down-at") up_at=$(cat "$tmp/link-up-at")
        # Resumed: the first progress line, from any worker, that arrived after the link came back.
        resumed=$(cat "$tmp"/logs/worker-*.log | awk -v up="$up_at" '$2 == "step" && $1 > up { print $1 }' | sort -n | head -1)
        # The longest silence in any worker's progress, for comparison with the outage.
        gap=$(for f in "$tmp"/logs/worker-*.log; do
            awk '$2 == "step" { if (prev != "" && $1 - prev > g) g = $1 - prev; prev = $1 } END { printf "%.1f\n", g }' "$f"
        done | sort -n | tail -1)
        if [ -n "$resumed" ]; then
            awk -v d="$down_at" -v u="$up_at" -v r="$resumed" -v g="$gap" 'BEGIN {
                printf "link-down: link down %.1f s; training resumed %.1f s after the link came back " \
                    "(first worker progress line); longest pause in a worker'"'"'s progress %s s\n", u - d, r - u, g }'
        else
            awk -v d="$down_at" -v u="$up_at" 'BEGIN {
                printf "link-down: link down %.1f s; no worker reported progress after the link came back\n", u - d }'
        fi
    else
        echo "link-down: the outage did not happen (no worker reported progress in time, or the run ended first)"
    fi
fi

if [ "$failed" = 1 ]; then echo "FAILED: a process exited non-zero (see above)" >&2; exit 1; fi
echo "OK: every process exited 0"
