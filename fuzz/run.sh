#!/usr/bin/env bash
# fuzz/run.sh - build every libFuzzer target (fuzz/fuzz_*.c) with clang and run
# each for a bounded time. Exits non-zero if a target fails to build or finds a
# crash, a leak or a sanitizer report.
#
#   FUZZ_SECONDS=60   run time per target (default 60)
#   FUZZ_JOBS=1       parallel fuzzing workers per target
#   CC=clang          compiler (must support -fsanitize=fuzzer)
#
# Each target names the library sources it needs in a comment line
#   LOOM_FUZZ_SOURCES: src/http/parser.c ...
# so a target builds without the rest of the library (and its dependencies).
# Seeds live in fuzz/corpus/<target without the fuzz_ prefix>/ and are only
# read; new inputs go to build-fuzz/corpus/, crashes to build-fuzz/artifacts/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CC=${CC:-clang}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
OUT=$ROOT/build-fuzz
mkdir -p "$OUT/bin" "$OUT/artifacts" "$OUT/corpus"

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found" >&2
    exit 1
fi

CFLAGS="-std=c11 -g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Wall -Wextra -Werror -I$ROOT/include -I$ROOT/src"

status=0
shopt -s nullglob
for src in fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    short=${name#fuzz_}
    deps=$(sed -n 's/.*LOOM_FUZZ_SOURCES:\(.*\)$/\1/p' "$src" | head -n1)
    echo "fuzz: building $name (sources:${deps:- none})"
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS "$src" $deps -o "$OUT/bin/$name"; then
        echo "fuzz: $name failed to build" >&2
        status=1
        continue
    fi
    seeds=$ROOT/fuzz/corpus/$short
    work=$OUT/corpus/$short
    mkdir -p "$work"
    echo "fuzz: running $name for ${SECONDS_PER_TARGET}s"
    args=(-max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -timeout=10 -rss_limit_mb=2048
          -artifact_prefix="$OUT/artifacts/$name-" -print_final_stats=1)
    if [ "$JOBS" -gt 1 ]; then
        args+=(-jobs="$JOBS" -workers="$JOBS")
    fi
    dirs=("$work")
    [ -d "$seeds" ] && dirs+=("$seeds")
    if ! ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        "$OUT/bin/$name" "${args[@]}" "${dirs[@]}" >"$OUT/$name.log" 2>&1; then
        echo "fuzz: $name FAILED; see $OUT/$name.log and $OUT/artifacts/" >&2
        tail -n 40 "$OUT/$name.log" >&2
        status=1
    else
        grep -E 'stat::number_of_executed_units|Done [0-9]+ runs' "$OUT/$name.log" | tail -n 2
        echo "fuzz: $name ok"
    fi
done
exit $status
