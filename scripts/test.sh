#!/usr/bin/env bash
# The test command: install what is missing, build, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The interop test reads our checkpoints with Python's safetensors package.
python3 -c "import safetensors, numpy" 2>/dev/null || python3 -m pip install --quiet safetensors numpy
swift build --build-tests
swift test --skip-build "$@"
