#!/usr/bin/env bash
# Set up for testing (`scripts/setup.sh --test`: the test extras and the Debian packages the tests
# drive) and run the whole test suite: lint (ruff), layering contracts (import-linter), types
# (mypy --strict on every package of podns), unit and end-to-end tests
# (pytest).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh --test
# Pods inherit PATH: their `python3` is the one podns runs on (with podns.demo importable).
export PATH="$PWD/.venv/bin:$PATH"
.venv/bin/ruff check podns tests bench tools
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest -q -p no:cacheprovider "$@"
