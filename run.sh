#!/usr/bin/env bash
# Set up and run podns on this machine: embedded store, API server, controllers, node agent and
# cluster DNS in one process. Extra arguments go to `podns up` (see `podns up --help`).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh
# Pods inherit PATH: their `python3` is the one podns runs on (with podns.demo importable).
export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/podns up --data-dir "${PODNS_DATA_DIR:-./state}" "$@"
