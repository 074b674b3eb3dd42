#!/usr/bin/env bash
# The main job on a fresh machine: set up, then run the one-command demo. Its first step validates
# the shipped playbooks; then it runs them on sample accounts against a private Temporal dev server
# (state in .csops/demo, free ports: a running `csops up` is not disturbed) and stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/csops demo "$@"
