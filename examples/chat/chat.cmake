# loom-chat serves the page in this directory from memory: at build time,
# embed.cmake turns every .html, .css and .js file here into a C array in
# <build>/examples/chat_assets.h, which chat.c includes. Included from
# examples/CMakeLists.txt once the loom-chat target exists.
if(TARGET loom-chat)
  file(GLOB LOOM_CHAT_ASSETS CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.html
       ${CMAKE_CURRENT_LIST_DIR}/*.css ${CMAKE_CURRENT_LIST_DIR}/*.js)
  set(LOOM_CHAT_ASSETS_H ${CMAKE_CURRENT_BINARY_DIR}/chat_assets.h)
  add_custom_command(
    OUTPUT ${LOOM_CHAT_ASSETS_H}
    COMMAND ${CMAKE_COMMAND} -DDIR=${CMAKE_CURRENT_LIST_DIR} -DOUT=${LOOM_CHAT_ASSETS_H} -P
            ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
    DEPENDS ${LOOM_CHAT_ASSETS} ${CMAKE_CURRENT_LIST_DIR}/embed.cmake
    COMMENT "Embedding the chat page"
    VERBATIM)
  target_sources(loom-chat PRIVATE ${LOOM_CHAT_ASSETS_H})
  target_include_directories(loom-chat PRIVATE ${CMAKE_CURRENT_BINARY_DIR})
endif()
