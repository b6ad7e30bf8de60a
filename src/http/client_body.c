/* http/client_body.c - request bodies: a buffer goes out with the head
 * (client_h1.c); a streamed body is pulled from the application's
 * on_source in pieces and written, chunked when its length is unknown,
 * paced by the socket's write queue. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/client_internal.h"

void loom__hc_on_drain(loom_socket_t *s, void *data)
{
    (void)data;
    hc_conn *c = hc_conn_of(s);
    if (c->dead || loom__queue_empty(&c->reqs))
        return;
    hc_req *r = hc_req_of(c->reqs.next);
    if (r->state == RQ_SENDING && r->on_source)
        loom__hc_pump(r);
}

/* Pulls the streamed body and writes it until the socket's queue is above
 * high water (on_drain resumes), the source has nothing (body_ready
 * resumes), or the body ends. */
void loom__hc_pump(hc_req *r)
{
    hc_state *st = r->st;
    hc_conn *c = r->conn;
    if (st->upload == NULL && (st->upload = malloc(HC_UPLOAD_CHUNK)) == NULL) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the request body");
        return;
    }
    bool chunked = r->body_length < 0;
    for (;;) {
        if (r->state != RQ_SENDING || c->dead || r->conn != c)
            return;
        if (loom_socket_queued(c->s) >= HC_HIGH_WATER)
            return; /* on_drain resumes */
        size_t want = HC_UPLOAD_CHUNK;
        if (!chunked && (uint64_t)r->body_length - r->uploaded < want)
            want = (size_t)((uint64_t)r->body_length - r->uploaded);
        ssize_t n = 0;
        if (want > 0 || chunked) {
            r->in_cb = 1;
            n = r->on_source(r, st->upload, want, r->h.data);
            r->in_cb = 0;
            if (r->state == RQ_DONE || r->conn != c)
                return; /* cancelled from the callback */
        }
        if (n == LOOM_EAGAIN)
            return;
        if (n < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, (int)n, "request body source failed: %s",
                          loom_strerror((int)n));
            return;
        }
        if ((size_t)n > want) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                          "request body source returned more than asked");
            return;
        }
        int rc;
        if (n == 0) {
            if (!chunked && r->uploaded != (uint64_t)r->body_length) {
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                              "request body ended after %" PRIu64 " of %" PRId64 " bytes",
                              r->uploaded, r->body_length);
                return;
            }
            rc = chunked ? loom_socket_write(c->s, "0\r\n\r\n", 5) : 0;
            if (rc < 0) {
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request body");
                return;
            }
            r->upload_done = 1;
            r->state = RQ_SENT;
            return;
        }
        if (chunked) {
            char line[LOOM__HTTP_CHUNK_LINE];
            size_t ll = loom__http_chunk_line(line, (uint64_t)n);
            struct iovec iov[3] = {{line, ll}, {st->upload, (size_t)n}, {"\r\n", 2}};
            rc = loom_socket_writev(c->s, iov, 3);
        } else {
            rc = loom_socket_write(c->s, st->upload, (size_t)n);
        }
        if (rc < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request body");
            return;
        }
        r->uploaded += (uint64_t)n;
        if (!chunked && r->uploaded == (uint64_t)r->body_length)
            continue; /* the next round asks for 0 bytes: skip the call */
    }
}
