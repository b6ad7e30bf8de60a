/* tests/http/http_version.h - the HTTP version parameter of the HTTP tests
 * (issue 16): ctest registers every test whose source says LOOM_TEST_H2 a
 * second time as <name>_h2 with LOOM_TEST_HTTP_VERSION=2 (see
 * tests/CMakeLists.txt and tests/http/VERSIONS.md). The same test code then
 * runs over HTTP/2: the helpers below give the server h2c with prior
 * knowledge, the loom client HTTP/2 without fallback, and curl
 * --http2-prior-knowledge; the tests check the version that answered so a
 * silent fallback to HTTP/1.1 fails them. */
#ifndef LOOM_TEST_HTTP_VERSION_H
#define LOOM_TEST_HTTP_VERSION_H

#include <stdlib.h>
#include <string.h>

#include "loom/http.h"
#include "loom/http_client.h"

/* 1 when this run is the HTTP/2 one. */
static inline int hv_h2(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("LOOM_TEST_HTTP_VERSION");
        v = e != NULL && strcmp(e, "2") == 0;
    }
    return v;
}

/* The version a request of this run is served with, as
 * loom_http_req_version() and loom_http_client_response_version() give it:
 * 20 or 11. */
static inline int hv_version(void)
{
    return hv_h2() ? 20 : 11;
}

/* Checks a request arrived in the version of this run: HTTP/2 in the
 * HTTP/2 run, HTTP/1.x otherwise (a test may send HTTP/1.0 on purpose). */
#define HV_CHECK_REQ(req)                                                                          \
    do {                                                                                           \
        if (hv_h2())                                                                               \
            CHECK_EQ(loom_http_req_version(req), 20);                                              \
        else                                                                                       \
            CHECK(loom_http_req_version(req) < 20);                                                \
    } while (0)

/* Server options of this run: h2c with prior knowledge for HTTP/2 (a plain
 * HTTP/1 connection is still served as before). */
static inline loom_http_server_opts *hv_server_opts(loom_http_server_opts *o)
{
    if (hv_h2())
        o->http2.h2c = true;
    return o;
}

/* The client's version option of this run: HTTP/2 with prior knowledge
 * (never a fallback to HTTP/1.1), or the default. */
static inline loom_http_version_t hv_client_version(void)
{
    return hv_h2() ? LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE : LOOM_HTTP_VERSION_AUTO;
}

/* The name of the protocol in output lines: "h2" or "http/1.1". */
static inline const char *hv_name(void)
{
    return hv_h2() ? "h2" : "http/1.1";
}

#endif
