/* End-to-end test of loom-chat, the demo: two pages in headless Chromium
 * talk through the long-poll chat (tests/e2e/chat_e2e.py does the driving,
 * chat_e2e_driver.h runs it; test_chat_h2_e2e.c is the same over HTTPS and
 * HTTP/2). The screenshot of both pages goes to <build>/chat_e2e.png.
 *
 * LOOM_TEST_NO_BACKEND: loom-chat picks its own backend ($LOOM_BACKEND is
 * passed through, so a ctest run with it set tests that backend).
 * LOOM_TEST_SERIAL: a browser is heavy; it runs alone.
 */
#include "chat_e2e_driver.h"

int main(void)
{
    return chat_e2e_run(NULL, LOOM_BINARY_DIR "/chat_e2e.png");
}
