#!/usr/bin/env bash
# The main job on a fresh machine: set up, then validate the shipped playbooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/csops validate playbooks/
