/* tests/http/hc_tls_test.h - the https client tests' recorder: hc_result
 * plus what loom_http_client_tls_info() said in on_response, and a GET with
 * a client context. */
#ifndef LOOM_HC_TLS_TEST_H
#define LOOM_HC_TLS_TEST_H

#include "../tls/tls_test_util.h"
#include "hc_test.h"

typedef struct {
    hc_result r;
    int info_rc; /* loom_http_client_tls_info() in on_response */
    char version[32], alpn[32], subject[256];
    uint64_t got; /* streamed body bytes (the test's on_body) */
    int streamed;
} tls_result;

static inline void tls_on_response(loom_http_client_req_t *req,
                                   const loom_http_client_response_t *res, void *data)
{
    tls_result *t = data;
    loom_tls_info info;
    t->info_rc = loom_http_client_tls_info(req, &info);
    if (t->info_rc == 0) {
        snprintf(t->version, sizeof t->version, "%s", info.version);
        snprintf(t->alpn, sizeof t->alpn, "%.*s", (int)info.alpn_len, info.alpn ? info.alpn : "");
        snprintf(t->subject, sizeof t->subject, "%s", info.peer_subject);
    }
    hc_on_response(req, res, &t->r);
}

static inline void tls_on_event(const loom_event_t *ev, void *data)
{
    hc_on_event(ev, &((tls_result *)data)->r);
}

/* Starts a request recorded in t (opts' callbacks and data are the
 * recorder's). */
static inline void tls_start(loom_loop_t *loop, const char *url, tls_result *t,
                             loom_http_request_opts o)
{
    memset(t, 0, sizeof *t);
    t->r.loop = loop;
    o.on_response = tls_on_response;
    o.on_event = tls_on_event;
    o.data = t;
    CHECK_OK(loom_http_request(loop, url, &o, NULL));
}

/* A GET of `url` with context cctx into r (hc_result), run until it ends. */
static inline void tls_get(loom_loop_t *loop, const char *url, hc_result *r, loom_tls_ctx_t *cctx)
{
    memset(r, 0, sizeof *r);
    hc_get(loop, url, r, &(loom_http_request_opts){.tls = cctx});
    hc_run_until(loop, &r->done, 10000);
    CHECK(r->done != 0);
}

#endif
