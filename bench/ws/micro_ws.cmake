# bench/ws/micro_ws.cmake - the pure layer's micro-benchmark (ws-frame).
# Included from bench/ws/CMakeLists.txt (owned by the ws benchmarks):
#   include(${CMAKE_CURRENT_SOURCE_DIR}/micro_ws.cmake OPTIONAL)
add_executable(bench-ws-micro ${CMAKE_CURRENT_LIST_DIR}/micro_ws.c)
target_link_libraries(bench-ws-micro PRIVATE loom_static)
target_compile_options(bench-ws-micro PRIVATE -O2)
