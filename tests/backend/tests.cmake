# tests/backend: the foreign-loop tests drive the application's side of an
# event library directly, so they link it (the loom backend itself may be a
# plugin that links its own copy: the same shared library, loaded once).
# Included from tests/CMakeLists.txt after every test target exists.
if(TARGET test_uv_foreign AND LOOM_WITH_LIBUV)
  target_link_libraries(test_uv_foreign PRIVATE PkgConfig::LIBUV)
endif()
if(TARGET test_event_foreign AND LOOM_WITH_LIBEVENT)
  target_link_libraries(test_event_foreign PRIVATE PkgConfig::LIBEVENT)
endif()
if(TARGET test_ev_foreign AND LOOM_WITH_LIBEV)
  target_include_directories(test_ev_foreign PRIVATE ${LIBEV_INCLUDE_DIR})
  target_link_libraries(test_ev_foreign PRIVATE ${LIBEV_LIBRARY})
endif()
