#!/usr/bin/env bash
# Quick start: set up, train a small model for a few minutes, and print a story.
# Extra options go to `minigpt train`, e.g. `bash scripts/demo.sh --max-time 10m`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
run="runs/demo-$(date +%Y%m%d-%H%M%S)"
.venv/bin/minigpt train --out "$run" --max-time 3m "$@"
echo
echo "=== a story from $run ==="
.venv/bin/minigpt generate --checkpoint "$run" "Once upon a time" --max-new-tokens 600
