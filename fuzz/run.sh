#!/usr/bin/env bash
# fuzz/run.sh - build every libFuzzer target (fuzz/fuzz_*.c) with clang and run
# each for a bounded time. Exits non-zero if a target fails to build or finds a
# crash, a leak, a hang or a sanitizer report.
#
#   fuzz/run.sh [--long RUNS] [--build-only | --no-build] [TARGET...]
#
#   TARGET            run only these (http_server or fuzz_http_server); default all
#   --long RUNS       run each target for RUNS executions (-runs=RUNS) instead
#                     of FUZZ_SECONDS, e.g. --long 10000000 for the long runs
#   --build-only      build, do not run
#   --no-build        run the binaries already built (so that several runs,
#                     one per core, can share one build)
#   FUZZ_SECONDS=60   run time per target (default 60)
#   FUZZ_JOBS=1       parallel fuzzing workers per target
#   FUZZ_TIMEOUT=10   seconds one input may take before it counts as a hang
#                     (raise it for long runs on a loaded machine)
#   CC=clang          compiler (must support -fsanitize=fuzzer)
#
# Each target names the library sources it needs in a comment line
#   LOOM_FUZZ_SOURCES: src/http/parser.c ...
# so a target builds without the rest of the library (and its dependencies),
# or says
#   LOOM_FUZZ_LIBLOOM
# to link the whole libloom, built once here by CMake with the same
# sanitizers and libFuzzer's coverage instrumentation (build-fuzz/lib).
# Seeds live in fuzz/corpus/<target without the fuzz_ prefix>/ and are only
# read; new inputs go to build-fuzz/corpus/, crashes to build-fuzz/artifacts/.
# A saved reproducer runs with: build-fuzz/bin/fuzz_<target> <file>
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CC=${CC:-clang}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
RUNS=""
BUILD_ONLY=0
NO_BUILD=0
ONLY=()
while [ $# -gt 0 ]; do
    case "$1" in
    --long)
        RUNS=${2:?--long needs a number of runs}
        shift 2
        ;;
    --build-only)
        BUILD_ONLY=1
        shift
        ;;
    --no-build)
        NO_BUILD=1
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        ONLY+=("${1#fuzz_}")
        shift
        ;;
    esac
done
OUT=$ROOT/build-fuzz
mkdir -p "$OUT/bin" "$OUT/artifacts" "$OUT/corpus"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found" >&2
    exit 1
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS="-std=c11 -g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer \
  -fsanitize=fuzzer $SAN -Wall -Wextra -Werror -I$ROOT/include -I$ROOT/src"

# The instrumented libloom, for the targets that need all of it. Only the
# built-in backends (epoll, poll): the targets pick them by name.
LIBLOOM=""
build_libloom() {
    [ -n "$LIBLOOM" ] && return 0
    local dir=$OUT/lib
    echo "fuzz: building the instrumented libloom in $dir"
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        CC=$CC cmake -S "$ROOT" -B "$dir" $(command -v ninja >/dev/null && echo "-G Ninja") \
            -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS="-O1 -fsanitize=fuzzer-no-link" \
            -DLOOM_SANITIZE=address,undefined -DLOOM_BUILD_TESTS=OFF \
            -DLOOM_BUILD_EXAMPLES=OFF -DLOOM_BUILD_BENCH=OFF -DLOOM_WITH_IO_URING=OFF \
            -DLOOM_WITH_LIBUV=OFF -DLOOM_WITH_LIBEVENT=OFF -DLOOM_WITH_LIBEV=OFF \
            >"$OUT/lib-cmake.log" 2>&1 || { cat "$OUT/lib-cmake.log" >&2; return 1; }
    fi
    cmake --build "$dir" --target loom_static -j "${FUZZ_BUILD_JOBS:-2}" >"$OUT/lib-build.log" 2>&1 ||
        { tail -n 40 "$OUT/lib-build.log" >&2; return 1; }
    LIBLOOM="$dir/src/libloom.a $(pkg-config --libs libcares libssl libcrypto libnghttp2 zlib) -lpthread -ldl"
}

status=0
shopt -s nullglob
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    short=${name#fuzz_}
    if [ ${#ONLY[@]} -gt 0 ] && ! printf '%s\n' "${ONLY[@]}" | grep -qx "$short"; then
        continue
    fi
    deps=$(sed -n 's/.*LOOM_FUZZ_SOURCES:\(.*\)$/\1/p' "$src" | head -n1)
    if [ "$NO_BUILD" = 1 ]; then
        if [ ! -x "$OUT/bin/$name" ]; then
            echo "fuzz: $OUT/bin/$name is not built (run with --build-only first)" >&2
            status=1
            continue
        fi
    elif grep -q 'LOOM_FUZZ_LIBLOOM' "$src"; then
        if ! build_libloom; then
            echo "fuzz: libloom failed to build" >&2
            exit 1
        fi
        deps="$deps $LIBLOOM"
    fi
    if [ "$NO_BUILD" = 0 ]; then
        echo "fuzz: building $name (sources:${deps:- none})"
        # shellcheck disable=SC2086
        if ! $CC $CFLAGS "$src" $deps -o "$OUT/bin/$name"; then
            echo "fuzz: $name failed to build" >&2
            status=1
            continue
        fi
    fi
    [ "$BUILD_ONLY" = 1 ] && continue
    seeds=$ROOT/fuzz/corpus/$short
    work=$OUT/corpus/$short
    mkdir -p "$work"
    args=(-max_len=4096 -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048
          -artifact_prefix="$OUT/artifacts/$name-" -print_final_stats=1)
    if [ -n "$RUNS" ]; then
        echo "fuzz: running $name for $RUNS runs"
        args+=(-runs="$RUNS")
    else
        echo "fuzz: running $name for ${SECONDS_PER_TARGET}s"
        args+=(-max_total_time="$SECONDS_PER_TARGET")
    fi
    if [ "$JOBS" -gt 1 ]; then
        args+=(-jobs="$JOBS" -workers="$JOBS")
    fi
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    start=$(date +%s)
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$OUT/bin/$name" "${args[@]}" "${dirs[@]}" >"$OUT/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; see $OUT/$name.log and $OUT/artifacts/" >&2
        tail -n 40 "$OUT/$name.log" >&2
        status=1
    else
        grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|Done [0-9]+ runs' \
            "$OUT/$name.log" | tail -n 3
        echo "fuzz: $name ok ($(($(date +%s) - start))s)"
    fi
done
exit $status
