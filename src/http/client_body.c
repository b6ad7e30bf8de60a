/* http/client_body.c - request bodies as a pull source: a buffer, or the
 * application's on_source (with on_rewind to send it again), read in pieces
 * by the protocol (client_h1.c frames and writes them; an HTTP/2 data
 * provider can call the same function), and rewound for a retry or a
 * redirect. */
#include <inttypes.h>
#include <string.h>

#include "http/client_internal.h"

int loom__hc_body_read(hc_req *r, char *buf, size_t len, size_t *n, bool *eof)
{
    *n = 0;
    *eof = false;
    if (r->on_source == NULL) {
        /* A buffer (HTTP/1 sends it with the head instead). */
        size_t left = r->body_len - (size_t)r->uploaded;
        size_t k = left < len ? left : len;
        if (k == 0) {
            *eof = true;
            return 0;
        }
        memcpy(buf, r->body + r->uploaded, k);
        r->uploaded += k;
        *n = k;
        return 0;
    }
    bool chunked = r->body_length < 0;
    size_t want = len;
    if (!chunked && (uint64_t)r->body_length - r->uploaded < want)
        want = (size_t)((uint64_t)r->body_length - r->uploaded);
    ssize_t got = 0;
    if (want > 0 || chunked) {
        /* A known length fully sent: the source is not asked for 0 bytes. */
        hc_conn *c = r->conn;
        r->in_cb = 1;
        got = r->on_source(r, buf, want, r->h.data);
        r->in_cb = 0;
        if (r->state == RQ_DONE || r->conn != c)
            return LOOM_ECANCELED; /* cancelled from the callback */
    }
    if (got == LOOM_EAGAIN)
        return LOOM_EAGAIN;
    char where[300];
    if (got < 0) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, (int)got,
                      "request body source failed: %s (request to %s)", loom_strerror((int)got),
                      loom__hc_where(r->pool, where, sizeof where));
        return LOOM_ECANCELED;
    }
    if ((size_t)got > want) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                      "request body source returned more than asked (request to %s)",
                      loom__hc_where(r->pool, where, sizeof where));
        return LOOM_ECANCELED;
    }
    if (got == 0) {
        if (!chunked && r->uploaded != (uint64_t)r->body_length) {
            loom__hc_fail(
                r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                "request body ended after %" PRIu64 " of %" PRId64 " bytes (request to %s)",
                r->uploaded, r->body_length, loom__hc_where(r->pool, where, sizeof where));
            return LOOM_ECANCELED;
        }
        *eof = true;
        return 0;
    }
    r->uploaded += (uint64_t)got;
    *n = (size_t)got;
    return 0;
}

int loom__hc_body_rewind(hc_req *r)
{
    r->uploaded = 0;
    if (r->on_source == NULL)
        return 0;
    if (r->on_rewind == NULL)
        return LOOM_ESTATE;
    int rc = r->on_rewind(r, r->h.data);
    return rc < 0 ? rc : 0;
}
