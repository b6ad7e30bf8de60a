#!/usr/bin/env bash
# Installs, with apt, only the Debian 12 packages loom needs that are missing.
# Idempotent; run as root (or with sudo available). --bench adds the
# benchmark peers.
set -euo pipefail

pkgs=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libc-ares-dev libssl-dev liburing-dev libuv1-dev libevent-dev libev-dev
      libcurl4-openssl-dev valgrind curl python3 nginx-light dnsmasq-base
      chromium procps iproute2 zlib1g-dev libnghttp2-dev nghttp2-client
      python3-websockets python3-h2)
# h2o: an HTTP/2 upstream for the client tests (test_h2_client_h2o) too.
pkgs+=(h2o)
# The openssl command: the tests' certificates (tests/tls/mkcerts.sh, the
# chat's HTTPS end-to-end run).
pkgs+=(openssl)
# node and npm (test tooling: the ws package) come with the machine; Debian's
# are the fallback.
if ! command -v npm >/dev/null 2>&1; then
    pkgs+=(nodejs npm)
fi
if [[ "${1:-}" == "--bench" ]]; then
    pkgs+=(wrk h2o gnuplot-nox util-linux libwebsockets-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    SUDO="sudo"
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light's package starts a system nginx on port 80; loom's tests start
# their own instances, so the system one is not needed.
if [[ " ${missing[*]} " == *" nginx-light "* ]]; then
    ($SUDO systemctl disable --now nginx >/dev/null 2>&1 || $SUDO service nginx stop >/dev/null 2>&1 || true)
fi
