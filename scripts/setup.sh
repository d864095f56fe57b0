#!/usr/bin/env bash
# Installs what the build needs, only when it is missing: ZeroMQ and OpenBLAS from Debian.
#
#   scripts/setup.sh                  the build's packages
#   scripts/setup.sh PKG:COMMAND ...  also these packages, each when its command is missing (tests: iproute2:ip)
#
# One line per package; apt's own output goes to a log file, shown only when it fails.
set -euo pipefail
missing=()
for pkg in libzmq3-dev libopenblas-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
for pair in "$@"; do
    pkg=${pair%%:*} cmd=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    log=$(mktemp "${TMPDIR:-/tmp}/setup-apt.XXXXXX.log")
    echo "installing ${missing[*]} (apt's output: $log)"
    if ! $sudo_cmd apt-get update -qq >>"$log" 2>&1; then
        echo "apt-get update failed; its output:" >&2; tail -20 "$log" >&2; exit 1
    fi
    for pkg in "${missing[@]}"; do
        if DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "$pkg" >>"$log" 2>&1; then
            echo "  installed $pkg"
        else
            echo "  could not install $pkg; apt's output:" >&2; tail -20 "$log" >&2; exit 1
        fi
    done
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install Swift 6 (swift.org) first" >&2; exit 1; }
