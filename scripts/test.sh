#!/usr/bin/env bash
# The whole test suite: set up, then lint (ruff), type-check (mypy), check the import layers
# (lint-imports) and run the tests (pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff" >&2
.venv/bin/ruff check .
echo "== mypy" >&2
.venv/bin/mypy
echo "== lint-imports (the layer contracts in pyproject.toml)" >&2
.venv/bin/lint-imports
echo "== pytest" >&2
exec .venv/bin/pytest "$@"
