#!/usr/bin/env bash
# Set up podns on a fresh Debian machine: a virtualenv with podns installed (editable) and the
# Debian packages it drives for real. Idempotent: a second run only checks.
#
#   scripts/setup.sh           what running podns needs (./run.sh)
#   scripts/setup.sh --test    that, plus the test extras and the packages the tests drive (./test.sh)
#   scripts/setup.sh --bench   that, plus the benchmarks' packages (or PODNS_BENCH=1 with --test)
#
# Never stops a process it did not start: Debian's postinst would start the services it installs
# (etcd, nsd), so while our apt-get runs a policy-rc.d refuses every start (unless the machine
# already has a policy-rc.d, which then stands); ours is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=run
for arg in "$@"; do
    case "$arg" in
        --test) mode=test ;;
        --bench) mode=bench ;;
        *) echo "usage: scripts/setup.sh [--test|--bench]" >&2; exit 2 ;;
    esac
done
if [ "$mode" = test ] && [ "${PODNS_BENCH:-0}" = 1 ]; then mode=bench; fi

# One list per purpose, "command:package" (the package is installed when the command is missing;
# a command with a `/` is a path pattern, for binaries off PATH such as PostgreSQL's server).
RUN_PACKAGES=(
    ip:iproute2                 # the node agent's --pod-network netns
    cc:gcc                      # the cluster DNS's compiled UDP loop (podns/clusterdns/fastudp.py)
)
if [ "$(id -u)" = 0 ]; then     # the podman container runtime runs pods as root only (netns)
    RUN_PACKAGES+=(podman:podman runc:runc)
    RUN_PACKAGES+=(nft:nftables)  # netns mode's ClusterIPs: kernel NAT rules (podns/node/proxy)
    RUN_PACKAGES+=(conntrack:conntrack)  # ... and their stale UDP flows flushed (kube-proxy does)
    RUN_PACKAGES+=(iptables-restore:iptables)  # --proxy-mode iptables, auto's fallback without nft
fi
TEST_PACKAGES=(
    dig:bind9-dnsutils          # DNS end-to-end tests
    nc:netcat-openbsd           # `kubectl exec db-0 -- nc -z ...` (issue 15's commands, e2e)
    etcd:etcd-server            # the etcd store's tests start their own etcd on free ports
    chromium:chromium           # the dashboard test
    # examples/postgres/, its e2e test and bench/pg_reads.py (the variable is for setup's own test)
    "${PODNS_PG_SERVER:-/usr/lib/postgresql/*/bin/postgres}:postgresql"
    etcdctl:etcd-client         # examples/etcd/ (its scale-up adds members with etcdctl)
    busybox:busybox-static      # the podman runtime's e2e builds its images from it (no registry)
)
BENCH_PACKAGES=(
    dnsperf:dnsperf
    nsd:nsd                     # the reference server of bench/dns_throughput.py
)

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
extras=""
stamp=.venv/.podns-installed
if [ "$mode" != run ]; then
    extras="[test]"
    stamp=.venv/.podns-installed-test
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "podns setup: installing podns${extras} and its Python packages into .venv" >&2
    log=.venv/pip-install.log
    if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".${extras}"; } >"$log" 2>&1; then
        cat "$log" >&2
        echo "podns setup: pip install failed (log above, also in $log)" >&2
        exit 1
    fi
    touch "$stamp"
fi

# ... which needs Python's headers too (a Debian python3's are in python3-dev)
pyinc=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)
if [ -n "$pyinc" ]; then RUN_PACKAGES+=("$pyinc/Python.h:python3-dev"); fi

# The compiled UDP loop, built now (when its source changed: fastudp.py names builds by hash) so
# the first DNS server does not wait for the compiler; where it cannot be built, the Python loop
# serves the same answers and this says why.
build_dns_loop() {
    .venv/bin/python -m podns.clusterdns.fastudp --quiet || true
}

wanted=("${RUN_PACKAGES[@]}")
if [ "$mode" != run ]; then wanted+=("${TEST_PACKAGES[@]}"); fi
if [ "$mode" = bench ]; then wanted+=("${BENCH_PACKAGES[@]}"); fi
need=()
for entry in "${wanted[@]}"; do
    cmd=${entry%%:*}
    case "$cmd" in
        */*) compgen -G "$cmd" >/dev/null || need+=("${entry#*:}") ;;
        *) command -v "$cmd" >/dev/null 2>&1 || need+=("${entry#*:}") ;;
    esac
done
if [ ${#need[@]} = 0 ]; then build_dns_loop; exit 0; fi
if [ "$(id -u)" != 0 ]; then
    echo "podns setup: missing Debian packages ${need[*]} (run as root to install them)" >&2
    build_dns_loop
    exit 0
fi

policy=${PODNS_POLICY_RC_D:-/usr/sbin/policy-rc.d}   # the variable is for setup's own test
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by podns scripts/setup.sh while it installs packages; removed after\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}" >/dev/null
build_dns_loop
