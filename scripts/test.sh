#!/usr/bin/env bash
# The test command: install what is missing, build, and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
