# Optional backends (included by src/CMakeLists.txt): io_uring, libuv ("uv"),
# libevent ("event") and libev ("ev"). Each is either linked into libloom or
# built as a plugin, libloom-backend-<name>.so, which exports
#     const loom_backend_t *loom_backend_plugin(void);
# and is loaded by name at run time (src/core/backend.c). See docs/BACKENDS.md.
#
# Modes: LOOM_BACKEND_MODE (plugin|linked) decides for uv, event and ev;
# io_uring has its own LOOM_IO_URING_MODE, "linked" by default: it is a
# kernel interface (liburing is a thin system-call wrapper), and built in it
# can fall back to epoll without a plugin lookup. In plugin mode libloom has
# no link dependency on any event library.
#
# libev also exports libevent's API names (event_add, event_base_new, ...):
# linked into one library the two would shadow each other, so when both are
# requested linked, libev is built as a plugin instead.

set(LOOM_IO_URING_MODE "linked" CACHE STRING "How the io_uring backend is built: 'linked' or 'plugin'")
set_property(CACHE LOOM_IO_URING_MODE PROPERTY STRINGS linked plugin)
set_property(CACHE LOOM_BACKEND_MODE PROPERTY STRINGS plugin linked)

set(LOOM_PLUGIN_BUILD_DIR ${CMAKE_BINARY_DIR}/src)
set(LOOM_EXTRA_TEST_BACKENDS "")
set(LOOM_BACKEND_PLUGINS "")

# loom_optional_backend(<name> <SUFFIX> <mode> <source> <include dirs> <libs> <names>)
#   SUFFIX names the config macro LOOM_LINKED_<SUFFIX>; libs are the full
#   paths to link in the build, names the plain library names (-l) that the
#   installed package gives users of the static library.
function(loom_optional_backend name suffix mode source incs libs names)
  if(mode STREQUAL "linked")
    target_sources(loom_objs PRIVATE ${source})
    target_include_directories(loom_objs PRIVATE ${incs})
    # Plain library names in the installed package: no absolute paths of the
    # build machine, and no pkg-config targets.
    target_link_libraries(loom_shared PRIVATE ${libs})
    target_link_libraries(loom_static PUBLIC "$<BUILD_INTERFACE:${libs}>"
                                             "$<INSTALL_INTERFACE:${names}>")
    set(LOOM_LINKED_${suffix} 1 PARENT_SCOPE)
    message(STATUS "loom backend ${name}: linked into libloom")
  else()
    set(t loom-backend-${name})
    add_library(${t} MODULE ${source})
    set_target_properties(${t} PROPERTIES PREFIX "lib" OUTPUT_NAME loom-backend-${name}
      LIBRARY_OUTPUT_DIRECTORY ${LOOM_PLUGIN_BUILD_DIR} C_VISIBILITY_PRESET hidden)
    target_compile_definitions(${t} PRIVATE LOOM_BUILDING LOOM_BACKEND_PLUGIN _GNU_SOURCE)
    target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/include ${PROJECT_SOURCE_DIR}/src
                                            ${PROJECT_BINARY_DIR} ${incs})
    # The loom_* symbols a plugin calls come from the process that loads it
    # (libloom.so, or an executable linked with libloom.a: see below).
    target_link_libraries(${t} PRIVATE ${libs})
    install(TARGETS ${t} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}/loom)
    set(LOOM_LINKED_${suffix} 0 PARENT_SCOPE)
    message(STATUS "loom backend ${name}: plugin lib${t}.so")
  endif()
endfunction()

if(LOOM_WITH_IO_URING)
  loom_optional_backend(io_uring IO_URING ${LOOM_IO_URING_MODE}
    ${CMAKE_CURRENT_SOURCE_DIR}/backend/io_uring.c "${URING_INCLUDE_DIRS}" "${URING_LINK_LIBRARIES}"
    "${URING_LIBRARIES}")
  # Where this machine cannot set up a ring (an old kernel, a container's
  # seccomp profile), every io_uring loop falls back to epoll: the suite's
  # io_uring runs would only repeat the epoll ones, so they are left out
  # (tests/backend/test_io_uring still checks the fallback).
  if(NOT DEFINED LOOM_IO_URING_WORKS AND NOT CMAKE_CROSSCOMPILING)
    file(WRITE ${CMAKE_BINARY_DIR}/CMakeFiles/loom_uring_probe.c
      "#include <liburing.h>\nint main(void) { struct io_uring r;\n"
      "  if (io_uring_queue_init(8, &r, 0) < 0) return 1;\n"
      "  io_uring_queue_exit(&r); return 0; }\n")
    try_run(run_result compile_result ${CMAKE_BINARY_DIR}/CMakeFiles/loom_uring_probe
      ${CMAKE_BINARY_DIR}/CMakeFiles/loom_uring_probe.c
      CMAKE_FLAGS "-DINCLUDE_DIRECTORIES=${URING_INCLUDE_DIRS}"
      LINK_LIBRARIES ${URING_LINK_LIBRARIES})
    if(compile_result AND run_result EQUAL 0)
      set(LOOM_IO_URING_WORKS ON CACHE INTERNAL "io_uring_setup works on the build machine")
    else()
      set(LOOM_IO_URING_WORKS OFF CACHE INTERNAL "io_uring_setup works on the build machine")
      message(STATUS "loom backend io_uring: io_uring_setup fails here; the suite does not run on it")
    endif()
  endif()
  if(LOOM_IO_URING_WORKS OR CMAKE_CROSSCOMPILING)
    list(APPEND LOOM_EXTRA_TEST_BACKENDS io_uring)
  endif()
  if(NOT LOOM_IO_URING_MODE STREQUAL "linked")
    list(APPEND LOOM_BACKEND_PLUGINS io_uring)
  endif()
endif()
if(LOOM_WITH_LIBUV)
  loom_optional_backend(uv LIBUV ${LOOM_BACKEND_MODE}
    ${CMAKE_CURRENT_SOURCE_DIR}/backend/uv.c "${LIBUV_INCLUDE_DIRS}" "${LIBUV_LINK_LIBRARIES}"
    "${LIBUV_LIBRARIES}")
  list(APPEND LOOM_EXTRA_TEST_BACKENDS uv)
  if(NOT LOOM_BACKEND_MODE STREQUAL "linked")
    list(APPEND LOOM_BACKEND_PLUGINS uv)
  endif()
endif()
if(LOOM_WITH_LIBEVENT)
  loom_optional_backend(event LIBEVENT ${LOOM_BACKEND_MODE}
    ${CMAKE_CURRENT_SOURCE_DIR}/backend/event.c "${LIBEVENT_INCLUDE_DIRS}"
    "${LIBEVENT_LINK_LIBRARIES}" "${LIBEVENT_LIBRARIES}")
  list(APPEND LOOM_EXTRA_TEST_BACKENDS event)
  if(NOT LOOM_BACKEND_MODE STREQUAL "linked")
    list(APPEND LOOM_BACKEND_PLUGINS event)
  endif()
endif()
if(LOOM_WITH_LIBEV)
  set(ev_mode ${LOOM_BACKEND_MODE})
  if(ev_mode STREQUAL "linked" AND LOOM_WITH_LIBEVENT)
    message(STATUS "loom backend ev: libev exports libevent's names; built as a plugin")
    set(ev_mode plugin)
  endif()
  loom_optional_backend(ev LIBEV ${ev_mode}
    ${CMAKE_CURRENT_SOURCE_DIR}/backend/ev.c "${LIBEV_INCLUDE_DIR}" "${LIBEV_LIBRARY}" ev)
  list(APPEND LOOM_EXTRA_TEST_BACKENDS ev)
  if(ev_mode STREQUAL "plugin")
    list(APPEND LOOM_BACKEND_PLUGINS ev)
  endif()
endif()

# The config header was generated before this file ran: generate it again
# with the LOOM_LINKED_* values now known (configure_file rewrites it only if
# it changed).
configure_file(${PROJECT_SOURCE_DIR}/cmake/config.h.in ${PROJECT_BINARY_DIR}/loom_config.h)

if(LOOM_BACKEND_PLUGINS)
  # Executables linked with libloom.a must export the loom_* functions a
  # plugin calls (libloom.so exports them anyway).
  target_link_options(loom_static INTERFACE "LINKER:--export-dynamic-symbol=loom_*")
  # The examples and benchmarks find the plugins of the build tree by
  # themselves, so that LOOM_BACKEND=uv works on them as they are: dlopen
  # searches the calling executable's RUNPATH. The tests do not get it: they
  # are run with LOOM_PLUGIN_PATH, and one checks that a plugin path without
  # the plugin gives LOOM_ENOPLUGIN. Installed programs find the plugins in
  # LOOM_PLUGIN_DIR. The examples' and benchmarks' targets only exist once
  # their directories are processed, hence the deferred call.
  function(loom_plugin_rpath dir)
    get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t ${targets})
      get_target_property(type ${t} TYPE)
      if(type STREQUAL "EXECUTABLE")
        set_property(TARGET ${t} APPEND PROPERTY BUILD_RPATH ${LOOM_PLUGIN_BUILD_DIR})
      endif()
    endforeach()
    get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
    foreach(d ${subdirs})
      loom_plugin_rpath(${d})
    endforeach()
  endfunction()
  function(loom_plugin_rpaths)
    foreach(d ${PROJECT_SOURCE_DIR}/examples ${PROJECT_SOURCE_DIR}/bench)
      if(IS_DIRECTORY ${d} AND EXISTS ${d}/CMakeLists.txt)
        get_property(known DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTY SUBDIRECTORIES)
        if(d IN_LIST known)
          loom_plugin_rpath(${d})
        endif()
      endif()
    endforeach()
  endfunction()
  cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL loom_plugin_rpaths)
endif()

# For tests/CMakeLists.txt (one level up) and tests/backend/tests.cmake.
set(LOOM_EXTRA_TEST_BACKENDS ${LOOM_EXTRA_TEST_BACKENDS} PARENT_SCOPE)
set(LOOM_BACKEND_PLUGINS ${LOOM_BACKEND_PLUGINS} PARENT_SCOPE)
set(LOOM_PLUGIN_BUILD_DIR ${LOOM_PLUGIN_BUILD_DIR} PARENT_SCOPE)
foreach(s IO_URING LIBUV LIBEVENT LIBEV)
  set(LOOM_LINKED_${s} ${LOOM_LINKED_${s}} PARENT_SCOPE)
endforeach()
