#!/usr/bin/env bash
# loom's benchmark suite: `make bench` (or `make bench QUICK=1`) runs this.
#   bash bench/run.sh [--quick] [--only timers,echo,...] [--docs]
# Environment: BUILD_DIR (default build), QUICK=1, BENCH_ONLY=<workloads>,
# BENCH_SERVER_CORE / BENCH_LOAD_CORE (default: the first two allowed CPUs).
# The work is done by bench/harness.py (python3, standard library only); this
# wrapper raises the open-file limit and makes sure that every process the
# harness started is gone when it exits, however it exits.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
args=("$@")
if [[ "${QUICK:-}" == 1 && " ${args[*]:-} " != *" --quick "* ]]; then
    args+=(--quick)
fi
export BUILD_DIR=${BUILD_DIR:-$root/build}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
pidfile=$(mktemp /tmp/loom-bench-pids.XXXXXX)
export BENCH_PIDFILE=$pidfile
cleanup() {
    # Each process the harness starts leads its own process group.
    if [[ -s "$pidfile" ]]; then
        while read -r pgid; do
            kill -TERM -- "-$pgid" 2>/dev/null || true
        done <"$pidfile"
        sleep 0.2
        while read -r pgid; do
            kill -KILL -- "-$pgid" 2>/dev/null || true
        done <"$pidfile"
    fi
    rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$here/harness.py" "${args[@]}"
