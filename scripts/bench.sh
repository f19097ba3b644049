#!/usr/bin/env bash
# Prints the speed figures the project tracks. Usage: scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench validate -- --noplot 2>&1 | grep -E "^validate|time:"
