/* http/h2_check.h - the HTTP rules of an HTTP/2 request (RFC 9113 section
 * 8), checked by loom as its fields, data and end arrive. nghttp2 runs
 * with its own HTTP checks off (nghttp2_option_set_no_http_messaging): it
 * does the framing, HPACK and stream states, loom the message rules, once,
 * in the pass it makes over the fields anyway.
 *
 * Pure: bytes in, a verdict out (NULL, or why the request is malformed;
 * the caller resets the stream with PROTOCOL_ERROR, RFC 9113 section
 * 8.1.1).
 */
#ifndef LOOM_HTTP_H2_CHECK_H
#define LOOM_HTTP_H2_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct loom__h2chk {
    uint32_t f;    /* LOOM__H2C_* (h2_check.c) */
    int64_t clen;  /* content-length, or -1 */
    uint64_t rlen; /* DATA bytes received */
} loom__h2chk;

/* A request stream begins. */
void loom__h2chk_init(loom__h2chk *k);

/* One field of the request's header block, or of its trailers. */
const char *loom__h2chk_field(loom__h2chk *k, const uint8_t *name, size_t nl, const uint8_t *value,
                              size_t vl, bool trailer);

/* The request's header block is complete; `end`: it carried END_STREAM. */
const char *loom__h2chk_head(loom__h2chk *k, bool end);

/* True if the request's target is origin-form ("/..." or "*") and its
 * host - the :authority if `authority`, else the host field - has only the
 * characters of a uri-host and port: what the server's own host check
 * (loom__hreq_check_host) would pass, so it need not run again. False
 * means "not known": that check decides. */
bool loom__h2chk_host_ok(const loom__h2chk *k, bool authority);

/* True if h[0..n), whose bytes are all in the character set of RFC 3986
 * uri-host and port (ALPHA DIGIT -._~!$&'()*+,;=%:[]), has their
 * structure: an IP literal ("[" IPv6address or IPvFuture "]") or a reg-name
 * or IPv4 address (no brackets, each "%" followed by two hex digits), then,
 * if `port`, optionally ":" and digits only (port = *DIGIT: "a:" passes,
 * "a:b" and "a:1:2" do not; RFC 9110 section 7.2, RFC 9112 section 3.2).
 * Shared by the HTTP/1 server's host check (server.c) and the HTTP/2 one
 * here, so both accept the same hosts. */
bool loom__h2chk_host_syntax(const uint8_t *h, size_t n, bool port);

/* The trailers' block is complete; `end`: it carried END_STREAM. */
const char *loom__h2chk_trailers(loom__h2chk *k, bool end);

/* n bytes of DATA arrived. */
const char *loom__h2chk_data(loom__h2chk *k, size_t n);

/* END_STREAM arrived on a DATA frame. */
const char *loom__h2chk_end(const loom__h2chk *k);

#endif
