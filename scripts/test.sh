#!/usr/bin/env bash
# The test command: install what is missing, build, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The interop test reads our checkpoints with Python's safetensors package; the deployment tests check the
# Kubernetes manifests with kubernetes-validate and run a job across network namespaces (iproute2); the ONNX
# export is checked with onnx and onnxruntime.
python3 -c "import safetensors, numpy, kubernetes_validate, prometheus_client, onnx, onnxruntime" 2>/dev/null \
    || python3 -m pip install --quiet safetensors numpy kubernetes-validate prometheus_client onnx onnxruntime
if ! command -v ip >/dev/null; then
    [ "$(id -u)" -eq 0 ] && { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2; }
fi
swift build --build-tests
swift test --skip-build "$@"
# The fuzz target, driving the envelope decoder and the server's rules with arbitrary bytes for a minute.
scripts/fuzz.sh --seconds 60
