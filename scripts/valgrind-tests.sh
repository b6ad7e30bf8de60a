#!/usr/bin/env bash
# The valgrind pass of `make test`: the loop-core tests (tests/core), the
# parser's unit tests and the TLS sockets (OpenSSL's allocations must be
# released too), on both built-in backends, under memcheck with leak
# checking. Any error or leak fails the run, and so does a block still
# reachable at exit: loom_loop_free() must leave nothing behind.
set -euo pipefail
build=${1:-build}
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind-tests: valgrind is not installed" >&2
    exit 1
fi
tests=()
for src in tests/core/test_*.c tests/http/test_http_parser.c tests/tls/test_tls_tcp.c; do
    [[ -f "$src" ]] || continue
    name=$(basename "$src" .c)
    exe="$build/tests/$name"
    [[ -x "$exe" ]] || continue
    # Backend-independent tests run once.
    if grep -q LOOM_TEST_NO_BACKEND "$src"; then
        tests+=("$exe:epoll")
    else
        tests+=("$exe:epoll" "$exe:poll")
    fi
done
fail=0
passed=0
for entry in "${tests[@]}"; do
    exe=${entry%:*}
    be=${entry##*:}
    {
        log=$(mktemp)
        if LOOM_BACKEND=$be LOOM_TEST_TIME_FACTOR=20 valgrind -q --error-exitcode=99 \
            --leak-check=full --show-reachable=yes --errors-for-leak-kinds=all --track-fds=no \
            --child-silent-after-fork=yes "$exe" >"$log" 2>&1; then
            passed=$((passed + 1))
        else
            rc=$?
            if [[ $rc -eq 77 ]]; then
                passed=$((passed + 1))
            else
                echo "valgrind: $(basename "$exe")@$be FAILED (exit $rc)" >&2
                tail -40 "$log" >&2
                fail=$((fail + 1))
            fi
        fi
        rm -f "$log"
    }
done
echo "valgrind: $passed passed, $fail failed"
[[ $fail -eq 0 ]]
