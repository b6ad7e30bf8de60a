/* End-to-end test of loom-chat over HTTPS and HTTP/2 (issue 16): the run of
 * test_chat_e2e.c with loom-chat serving a fresh test certificate
 * (tests/tls/mkcerts.sh) and Chromium trusting the test CA by its SPKI hash.
 * On top of the chat itself (WebSocket page and long-polling page talking
 * both ways, the live panel, SIGINT), tests/e2e/chat_e2e.py --tls checks
 * from DevTools' Network events and loom-chat's access log that the pages,
 * assets, polls, POSTs and /api/stats went over h2, that page B's polls were
 * held on h2 streams of one connection, that the WebSocket went over
 * HTTP/1.1 on its own connection (no RFC 8441), and that the poll held at
 * SIGINT was answered over h2. No screenshot (test_chat_e2e takes one): it
 * would cost seconds.
 *
 * LOOM_TEST_NO_BACKEND: loom-chat picks its own backend ($LOOM_BACKEND is
 * passed through, so a ctest run with it set tests that backend).
 * LOOM_TEST_SERIAL: a browser is heavy; it runs alone.
 */
#include "chat_e2e_driver.h"

int main(void)
{
    return chat_e2e_run("--tls", NULL);
}
