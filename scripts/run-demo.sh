#!/usr/bin/env bash
# `make run`: starts loom's demo, the long-poll chat at http://127.0.0.1:8080/.
# Until a build has it, the best example there is.
set -euo pipefail
build=${1:-build}
port=${PORT:-8080}
ex="$build/examples"
if [[ -x "$ex/loom-chat" ]]; then
    echo "loom chat demo: open http://127.0.0.1:$port/ in two browser windows (Ctrl-C stops)"
    exec "$ex/loom-chat" --port "$port"
elif [[ -x "$ex/loom-hello" ]]; then
    echo "loom-hello on http://127.0.0.1:$port/ (Ctrl-C stops)"
    exec "$ex/loom-hello" --port "$port"
elif [[ -x "$ex/loom-echo" ]]; then
    echo "loom-echo on 127.0.0.1:$port: try 'nc 127.0.0.1 $port' (Ctrl-C stops)"
    exec "$ex/loom-echo" --port "$port"
else
    echo "run-demo: no demo program was built" >&2
    exit 1
fi
