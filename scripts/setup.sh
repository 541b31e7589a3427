#!/usr/bin/env bash
# Set up everything podns and its tests need on a fresh Debian machine: a virtualenv with podns
# installed (editable, with the test extras) and the Debian packages the tests drive for real.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.podns-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "podns setup: installing podns and its Python packages into .venv" >&2
    log=.venv/pip-install.log
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e '.[test]'; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "podns setup: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi

# Debian packages: dig (bind9-dnsutils), etcd (etcd-server) and chromium (the dashboard test) for
# the tests; dnsperf and nsd for bench/. Installed only when missing, so a prepared machine pays nothing.
need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# `ip` for the node agent's --pod-network netns (and its tests, which run as root)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ "${PODNS_BENCH:-0}" = 1 ]; then
    command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
    command -v nsd >/dev/null 2>&1 || need+=(nsd)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
        # Debian starts services it installs; podns's tests start their own.
        systemctl disable --now etcd nsd >/dev/null 2>&1 || true
        pkill -x etcd >/dev/null 2>&1 || true
    else
        echo "podns setup: missing Debian packages ${need[*]} (run as root to install them)" >&2
    fi
fi
