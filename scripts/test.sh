#!/usr/bin/env bash
# The test command: install what is missing, build, and run the whole suite, then the fuzz targets.
#
#   scripts/test.sh                         everything (what CI runs)
#   scripts/test.sh --filter X              set-up, build, then only the tests matching X (no fuzzing)
#   scripts/test.sh --repeat N [--filter X] build once, run the chosen tests N times (no set-up, no fuzzing),
#                                           and print passes and failures per test
#
# SwiftPM's own `swift build` and `swift test` leave empty /tmp/TemporaryDirectory.* folders behind (strace: the
# swift-test process makes them, a few per run; nothing of ours does). Everything runs with TMPDIR in one
# folder of its own, removed at the end, and the end checks that /tmp gained nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

repeat=0
filter=()
while [ $# -gt 0 ]; do
    case "$1" in
        --repeat) [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]{0,3}$ ]] || { echo "test.sh: --repeat takes a count from 1 to 9999" >&2; exit 64; }
            repeat=$2; shift 2 ;;
        --filter) [ $# -ge 2 ] || { echo "test.sh: --filter takes a pattern" >&2; exit 64; }
            filter=(--filter "$2"); shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option $1 (see --help)" >&2; exit 64 ;;
    esac
done

count_tmp() { find /tmp -maxdepth 1 -name 'TemporaryDirectory.*' 2>/dev/null | wc -l; }
tmp_before=$(count_tmp)
scratch=$(mktemp -d /tmp/scoped-trainer-tests.XXXXXX)
export TMPDIR=$scratch
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT

# What a test run must leave as it found it: no process, no network namespace, no folder in /tmp.
check_clean() {
    local bad=0
    local left
    # This checkout's binaries only (other checkouts on the same machine may be running their own).
    left=$(pgrep -f "$PWD/.build/" 2>/dev/null | grep -v "^$$\$" | tr '\n' ' ' || true)
    if [ -n "$left" ]; then echo "test.sh: processes left running: $left" >&2; bad=1; fi
    left=$(ip netns list 2>/dev/null | grep -E '^st[0-9a-f]{4}' | tr '\n' ' ' || true)
    if [ -n "$left" ]; then echo "test.sh: network namespaces left behind: $left" >&2; bad=1; fi
    local after
    after=$(count_tmp)
    if [ "$after" -gt "$tmp_before" ]; then
        # This run writes nothing there (TMPDIR is its own folder); other builds on the same machine may. CI runs
        # alone, so there it is an error; on a shared machine, a warning.
        echo "test.sh: /tmp gained $((after - tmp_before)) TemporaryDirectory.* folders during the run" >&2
        [ "${CI:-}" = true ] && bad=1
    fi
    return $bad
}

if [ "$repeat" -gt 0 ]; then
    swift build --build-tests
    log="$scratch/repeat.log"
    : > "$log"
    for i in $(seq 1 "$repeat"); do
        echo "== run $i of $repeat"
        if swift test --skip-build "${filter[@]}" > "$scratch/run.txt" 2>&1; then echo "   passed"; else echo "   FAILED"; fi
        # Swift Testing's lines: '✔ Test "title" passed after …' and '✘ Test "title" failed after …'.
        grep -aE '^[✔✘] Test ' "$scratch/run.txt" | grep -aE ' (passed|failed) after ' >> "$log" || true
        grep -aE '^[✘] Test .* recorded an issue' "$scratch/run.txt" | head -5 || true
    done
    echo "== per test, over $repeat runs: passed / failed"
    status=0
    python3 - "$log" <<'PY' || status=$?
import re, sys, collections
tally = collections.OrderedDict()
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    m = re.match(r'^(\S) Test (.*?) (passed|failed) after', line)
    if not m:
        continue
    name = m.group(2)
    t = tally.setdefault(name, [0, 0])
    t[0 if m.group(3) == "passed" else 1] += 1
failed = 0
for name, (p, f) in tally.items():
    if f:
        failed += 1
    print(f"{p:4d} / {f:<4d} {name}")
print(f"{len(tally)} tests, {failed} with failures")
sys.exit(1 if failed else 0)
PY
    check_clean || status=1
    exit $status
fi

scripts/setup.sh
# The interop test reads our checkpoints with Python's safetensors package; the deployment tests check the
# Kubernetes manifests with kubernetes-validate; the ONNX export is checked with onnx and onnxruntime.
python3 -c "import safetensors, numpy, kubernetes_validate, prometheus_client, onnx, onnxruntime" 2>/dev/null \
    || python3 -m pip install --quiet safetensors numpy kubernetes-validate prometheus_client onnx onnxruntime
# Network namespaces (iproute2) for the jobs across hosts; a real terminal (tmux) for the Ctrl-C test.
scripts/setup.sh iproute2:ip tmux:tmux
swift build --build-tests
swift test --skip-build "${filter[@]}"
if [ ${#filter[@]} -eq 0 ]; then
    # The fuzz target, driving the envelope decoder and the server's rules with arbitrary bytes for a minute.
    scripts/fuzz.sh --seconds 60
fi
check_clean
