# bench/common/deps.cmake - included by every bench/<dir>/CMakeLists.txt.
# Finds the peer libraries (each one optional: a missing library skips
# its targets with a message, the build never fails for it) and sends every
# benchmark executable to <build>/bench/, where bench/harness.py looks.

set(LOOM_BENCH_BIN_DIR ${PROJECT_BINARY_DIR}/bench)
set(LOOM_BENCH_COMMON_DIR ${CMAKE_CURRENT_LIST_DIR})

pkg_check_modules(BENCH_UV IMPORTED_TARGET GLOBAL libuv)
pkg_check_modules(BENCH_EVENT IMPORTED_TARGET GLOBAL libevent)
pkg_check_modules(BENCH_CURL IMPORTED_TARGET GLOBAL libcurl)
# Debian's libev ships no .pc file.
find_path(BENCH_EV_INCLUDE_DIR ev.h)
find_library(BENCH_EV_LIBRARY ev)
if(BENCH_EV_INCLUDE_DIR AND BENCH_EV_LIBRARY)
  set(BENCH_EV_FOUND 1)
endif()

get_property(_bench_reported GLOBAL PROPERTY LOOM_BENCH_DEPS_REPORTED)
if(NOT _bench_reported)
  set_property(GLOBAL PROPERTY LOOM_BENCH_DEPS_REPORTED 1)
  foreach(lib UV EVENT CURL EV)
    if(NOT BENCH_${lib}_FOUND)
      message(STATUS "bench: ${lib} library not found: its peer programs are skipped")
    endif()
  endforeach()
endif()

# loom_bench_program(<name> SOURCES <src...> [LIBS <targets...>])
# Builds <build>/bench/<name> with the shared helpers on its include path.
function(loom_bench_program name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${P_SOURCES})
  target_include_directories(${name} PRIVATE ${LOOM_BENCH_COMMON_DIR})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_link_libraries(${name} PRIVATE ${P_LIBS})
  target_link_options(${name} PRIVATE ${LOOM_LTO_FLAGS})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${LOOM_BENCH_BIN_DIR})
endfunction()
