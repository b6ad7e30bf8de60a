#!/usr/bin/env bash
# ctest "install/consumers": installs the build into a temporary prefix, then
# builds and runs two tiny consumers, one with CMake's find_package(loom) and
# one with pkg-config, and checks that libloom.so exports only loom_ names,
# that a backend plugin loads from the prefix without LOOM_PLUGIN_PATH (next
# to the installed libloom), and that the installed CMake package names the
# static library's dependencies without absolute paths.
set -euo pipefail
build=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >/dev/null

lib=$(find "$prefix" -name "libloom.so.*.*" | head -1)
[[ -n "$lib" ]] || { echo "no libloom.so installed"; exit 1; }
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[[ "$soname" == libloom.so.0 ]] || { echo "unexpected SONAME '$soname'"; exit 1; }
bad=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^loom_' | grep -v '^_' || true)
if [[ -n "$bad" || -n "$(nm -D --defined-only "$lib" | awk '{print $3}' | grep '^loom__' || true)" ]]; then
    echo "libloom.so exports non-public symbols:"; echo "$bad" | head; exit 1
fi

cat >"$tmp/main.c" <<'C'
#include <loom.h>
#include <stdio.h>
static void on_timer(loom_timer_t *t, void *data) { *(int *)data = 1; (void)t; }
int main(void)
{
    loom_loop_t *loop;
    int fired = 0;
    if (loom_loop_new(&loop, NULL) != 0)
        return 1;
    loom_delay(loop, 1, on_timer, &fired, NULL);
    loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    printf("fired=%d\n", fired);
    return fired ? 0 : 1;
}
C
mkdir -p "$tmp/cm"
cat >"$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.20)
project(consumer C)
find_package(loom REQUIRED)
add_executable(consumer ../main.c)
target_link_libraries(consumer loom::loom)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
LD_LIBRARY_PATH=$(dirname "$lib") "$tmp/cm/build/consumer"

# A plugin backend, found next to the installed libloom (prefix/lib/loom),
# not through LOOM_PLUGIN_PATH nor the configured install prefix.
plugin=$(find "$(dirname "$lib")/loom" -name 'libloom-backend-*.so' 2>/dev/null | head -1)
if [[ -n "$plugin" ]]; then
    be=$(basename "$plugin" .so)
    be=${be#libloom-backend-}
    env -u LOOM_PLUGIN_PATH LOOM_BACKEND="$be" LD_LIBRARY_PATH=$(dirname "$lib") \
        "$tmp/cm/build/consumer" || { echo "plugin backend $be not found in the prefix"; exit 1; }
    echo "install: backend plugin $be loaded from $(dirname "$plugin")"
fi

# The exported targets name no file of the build machine.
targets=$(find "$prefix" -name 'loomTargets.cmake' | head -1)
[[ -n "$targets" ]] || { echo "no loomTargets.cmake installed"; exit 1; }
abs=$(grep -h 'INTERFACE_LINK_LIBRARIES' "$targets" | grep '"/\|;/' || true)
if [[ -n "$abs" ]]; then
    echo "loomTargets names absolute paths:"; echo "$abs"; exit 1
fi

pc=$(dirname "$(find "$prefix" -name loom.pc | head -1)")
PKG_CONFIG_PATH=$pc cc -o "$tmp/pc" "$tmp/main.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs loom)
LD_LIBRARY_PATH=$(dirname "$lib") "$tmp/pc"
echo "install: find_package and pkg-config consumers built and ran; exports are loom_* only"
