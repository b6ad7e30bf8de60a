#!/usr/bin/env bash
# Runs the normal (build/) and the ASan+UBSan (build-asan/) suites N times,
# the way `make test` runs them (same parallelism: the Makefile's CTEST_J,
# same sanitizer options), and prints how often each test failed.
#
#   scripts/flake-hunt.sh N [ctest arguments...]
#   scripts/flake-hunt.sh 10                 # the whole suite, 10 times each
#   scripts/flake-hunt.sh 1 -R 'core/'       # a subset (any ctest filter)
#   SUITES=asan scripts/flake-hunt.sh 5      # only one suite (normal|asan)
#
# Both builds are brought up to date first (configured as the Makefile does
# if missing). Exit status: 0 when no run failed, 1 otherwise. The per-run
# ctest logs are kept in $LOG_DIR (default: a fresh /tmp/loom-flake-hunt.*).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-}
if ! [[ "$n" =~ ^[0-9]+$ ]] || [[ "$n" -lt 1 ]]; then
    echo "usage: $0 N [ctest arguments...]" >&2
    exit 2
fi
shift
suites=${SUITES:-normal asan}
ctest_j=${CTEST_J:-$(sed -n 's/^CTEST_J[[:space:]]*?=[[:space:]]*\([0-9]*\).*/\1/p' Makefile)}
ctest_j=${ctest_j:-4}
jobs=${JOBS:-$(nproc)}
log_dir=${LOG_DIR:-$(mktemp -d /tmp/loom-flake-hunt.XXXXXX)}
mkdir -p "$log_dir"

dir_of() { [[ $1 == asan ]] && echo build-asan || echo build; }

for s in $suites; do
    d=$(dir_of "$s")
    if [[ ! -f $d/CMakeCache.txt ]]; then
        make -s "$d"
    else
        cmake --build "$d" -j "$jobs" >"$log_dir/build-$s.log" 2>&1 ||
            { tail -30 "$log_dir/build-$s.log"; exit 1; }
    fi
done

declare -A fails=()
total_fail=0
for ((i = 1; i <= n; i++)); do
    for s in $suites; do
        d=$(dir_of "$s")
        log="$log_dir/$s-$i.log"
        rm -f "$d/Testing/Temporary/LastTestsFailed.log"
        rc=0
        if [[ $s == asan ]]; then
            (cd "$d" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
                ctest --output-on-failure -j "$ctest_j" "$@") >"$log" 2>&1 || rc=$?
        else
            (cd "$d" && ctest --output-on-failure -j "$ctest_j" "$@") >"$log" 2>&1 || rc=$?
        fi
        nf=0
        # One "<number>:<name>" line per failed test (timeouts included).
        if [[ -f $d/Testing/Temporary/LastTestsFailed.log ]]; then
            while IFS=: read -r _ name; do
                [[ -n $name ]] || continue
                key="$s $name"
                fails[$key]=$((${fails[$key]:-0} + 1))
                nf=$((nf + 1))
            done <"$d/Testing/Temporary/LastTestsFailed.log"
        fi
        if [[ $rc -ne 0 && $nf -eq 0 ]]; then
            # ctest itself failed (no test ran, bad arguments): count it.
            fails["$s (ctest exit $rc)"]=$((${fails["$s (ctest exit $rc)"]:-0} + 1))
            nf=1
        fi
        total_fail=$((total_fail + nf))
        echo "run $i/$n $s: $nf failed ($(grep -o '[0-9]*% tests passed, [0-9]* tests\{0,1\} failed out of [0-9]*' "$log" | head -1 || true)); log $log"
    done
done

echo
echo "failures per test over $n run(s) of: $suites (ctest -j $ctest_j${*:+ $*})"
if [[ $total_fail -eq 0 ]]; then
    echo "  none"
    exit 0
fi
for key in "${!fails[@]}"; do
    printf '%6d  %s\n' "${fails[$key]}" "$key"
done | sort -rn
exit 1
