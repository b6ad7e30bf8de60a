/* tests/http/test_http_differential.c - loom's HTTP/1 parser against llhttp,
 * replayed from a committed list.
 *
 * LOOM_TEST_NO_BACKEND: this test uses no event loop, so it runs once.
 *
 * The inputs come from a differential run of loom's parser against llhttp
 * 9.3.1 in strict mode (node 20's http parser): obfuscated and repeated
 * Transfer-Encoding and Content-Length fields, chunk sizes and extensions,
 * trailers, versions, request lines, Connection lists, stray line endings,
 * status lines and response framing. Each input is parsed as a connection
 * would read it - head, framing, body, next message - with the default
 * limits, once whole and once arriving byte by byte (heads parsed again with
 * the last_len hint), and both outcomes must be loom's recorded verdict:
 *
 *   "<messages>[:<body bytes>,...] <end>"
 *
 * where <messages> counts the complete messages (an upgrade or tunnel counts
 * and has no body entry) and <end> is "ok" (the input ends between messages,
 * perhaps after empty lines), "upgrade" (101, or Connection: upgrade with
 * Upgrade, or a tunnel: the rest is not HTTP), "closed" (bytes follow a
 * message after which the connection does not stay open), "eof" (the input
 * ends inside a message) or the LOOM_HTTP_PERR_* name of the error.
 *
 * Where llhttp's outcome differs, it is recorded next to loom's with the
 * reason (docs/HTTP.md, "Deliberate differences from llhttp"); message
 * boundaries that differ are judged there, since any framing difference
 * between two parsers on one connection is a request-smuggling risk.
 * Modes: 'q' request, 'r' response to GET, 'h' response to HEAD.
 *
 * The differential itself (it needs node) is tests/http/llhttp_diff/
 * diff_run.py; its --emit writes this table from the current parser.
 *
 * Responses are parsed with the default limits, so obs-fold in a response
 * is OBS_FOLD here as in llhttp; loom's HTTP client sets
 * LOOM_HTTP_LIMIT_OBS_FOLD and unfolds (RFC 9112 section 5.2), which
 * test_http_parser and test_http_client_obs_fold cover.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/http_parser.h"
#include "test.h"

typedef struct {
    char mode;
    const char *in;
    size_t len;
    const char *loom;   /* loom's verdict */
    const char *llhttp; /* llhttp's verdict where it differs, else NULL */
    const char *why;    /* why loom differs */
} dcase_t;

#define C(mode, s, loom, llhttp, why)                                                              \
    {                                                                                              \
        mode, s, sizeof s - 1, loom, llhttp, why                                                   \
    }

static const dcase_t cases[] = {
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "OWS around a field value or list element is not part of it (RFC 9110 5.5, 5.6.1); llhttp "
      "rejects or misreads a trailing HTAB"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
      "identity\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity, "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TE_UNSUPPORTED", "2:5,0 ok",
      "loom decodes no coding but chunked: 501 (RFC 9112 6.1); llhttp hands the coded body on"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TE_UNSUPPORTED", "2:5,0 ok",
      "loom decodes no coding but chunked: 501 (RFC 9112 6.1); llhttp hands the coded body on"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunkedx\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\x0b\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HEADER_VALUE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "empty list elements are ignored (RFC 9110 5.6.1): the final coding is chunked"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "\"chunked\"\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked;q=1\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", "1:0 error",
      "an empty Transfer-Encoding is present but chunked is not final: 400 (RFC 9112 6.3 item 4); "
      "llhttp ignores it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chu nked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\x00\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HEADER_VALUE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip;q=1, "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TE_UNSUPPORTED", "2:5,0 ok",
      "loom decodes no coding but chunked: 501 (RFC 9112 6.1); llhttp hands the coded body on"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked , "
      "gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked "
      "gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TRANSFER_ENCODING", "1:5 ok",
      "Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1): 400"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: "
      "5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", NULL, NULL),
    C('q',
      "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nContent-Length: "
      "5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", NULL, NULL),
    C('q', "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TRANSFER_ENCODING", "1:0 closed",
      "Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1): 400"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\nContent-Length: "
      "5\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", "1:5 error",
      "an empty Transfer-Encoding is present but chunked is not final: 400 (RFC 9112 6.3 item 4); "
      "llhttp ignores it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 CL_WITH_TE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TE_UNSUPPORTED", "1:5 ok",
      "loom decodes no coding but chunked: 501 (RFC 9112 6.1); llhttp hands the coded body on"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "0 TRANSFER_ENCODING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\nTransfer-Encoding:\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 05\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,6\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length:  5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 \r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\t\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "OWS around a field value or list element is not part of it (RFC 9110 5.5, 5.6.1); llhttp "
      "rejects or misreads a trailing HTAB"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5.0\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\nhelloGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\nhelloGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \xff"
      "5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5a\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00000000000000000000005\r\n\r\nhelloGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:0,0 ok", "1:0 error",
      "\"helloGET\" is a valid method token; llhttp knows only a fixed list"),
    C('q', "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
      "0 CONTENT_LENGTH_DUP", NULL, NULL),
    C('q', "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
      "0 CONTENT_LENGTH_DUP", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n05\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\t\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 "
      ";a=b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5; a = "
      "b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b "
      "c\"\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\"b\\\"c\"\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", "2:5,0 ok",
      "chunk-ext-val is token / quoted-string, never empty (RFC 9112 7.1.1)"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a;b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=b\x00\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\"\x01\"\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\"\x80\"\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5;a=\x80\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:10,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:10,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n0000000000000005\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", "2:5,0 ok",
      "more than 16 hex digits in a chunk size, leading zeros included, is rejected to bound the "
      "chunk line"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 LINE_ENDING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_DATA_END", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_DATA_END", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nA: "
      "b\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nA : "
      "b\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 SPACE_BEFORE_COLON", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n a: "
      "b\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 OBS_FOLD", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nA: b\r\n "
      "c\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 OBS_FOLD", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nA: "
      "\x00\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HEADER_VALUE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\nGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "trailer fields are checked and reported, never used for framing (RFC 9110 6.5.1)"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0;x=1\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 LINE_ENDING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0 \r\n\r\nGET "
      "/n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\x00\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 CHUNK_SIZE", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 LINE_ENDING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5 ; "
      "a\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a "
      "=b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a= "
      "b\r\nhello\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "1:5 ok",
      NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n05\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n000\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\t\r\nhello\r\n0\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 ;a=b\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5; a = b\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", "0 error",
      "BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict "
      "rejects it"),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b c\"\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\\\"c\"\r\nhello\r\n0\r\n\r\n",
      "1:5 ok", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b\r\nhello\r\n0\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('r', "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n",
      "0 CHUNK_EXT", NULL, NULL),
    C('q', "GET / HTTP/1.0\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "GET / HTTP/1.2\r\nHost: h\r\n\r\n", "1:0 ok", "0 error",
      "a higher HTTP/1 minor version is served as 1.1 (RFC 9110 2.5); llhttp strict rejects it"),
    C('q', "GET / HTTP/1.9\r\nHost: h\r\n\r\n", "1:0 ok", "0 error",
      "a higher HTTP/1 minor version is served as 1.1 (RFC 9110 2.5); llhttp strict rejects it"),
    C('q', "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "0 VERSION_UNSUPPORTED", "1:0 ok",
      "only HTTP/1.x is parsed: 505 (RFC 9110 15.6.6)"),
    C('q', "GET / HTTP/0.9\r\nHost: h\r\n\r\n", "0 VERSION_UNSUPPORTED", "1:0 ok",
      "only HTTP/1.x is parsed: 505 (RFC 9110 15.6.6)"),
    C('q', "GET / HTTP/3.0\r\nHost: h\r\n\r\n", "0 VERSION_UNSUPPORTED", NULL, NULL),
    C('q', "GET / http/1.1\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP/11\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP/1.10\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP/1\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP /1.1\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTPS/1.1\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / HTTP/1.a\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / ICE/1.0\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET / RTSP/1.0\r\nHost: h\r\n\r\n", "0 VERSION", "1:0 ok", "loom parses HTTP only"),
    C('q', "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "0 TARGET", "1:0 ok",
      "exactly one SP between request-line parts (RFC 9112 3); no HTTP/0.9 simple requests"),
    C('q', "GET /  HTTP/1.1\r\nHost: h\r\n\r\n", "0 VERSION", "1:0 ok",
      "exactly one SP between request-line parts (RFC 9112 3); no HTTP/0.9 simple requests"),
    C('q', "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", "0 METHOD", NULL, NULL),
    C('q', "GET /\tHTTP/1.1\r\nHost: h\r\n\r\n", "0 TARGET", NULL, NULL),
    C('q', " GET / HTTP/1.1\r\nHost: h\r\n\r\n", "0 METHOD", NULL, NULL),
    C('q', "get / HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", "0 error",
      "any token is a method (RFC 9110 9.1); the server answers 501 to unknown ones"),
    C('q', "PRI * HTTP/1.1\r\nHost: h\r\n\r\n", "0 METHOD", NULL, NULL),
    C('q', "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "0 METHOD", NULL, NULL),
    C('q', "M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "QUERY / HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "BREW / HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", "0 error",
      "any token is a method (RFC 9110 9.1); the server answers 501 to unknown ones"),
    C('q', "GET /a b HTTP/1.1\r\nHost: h\r\n\r\n", "0 VERSION", NULL, NULL),
    C('q', "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "0 TARGET", NULL, NULL),
    C('q', "GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n", "0 TARGET", NULL, NULL),
    C('q', "GET /\"{}|\\^` HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "GET /#f HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "GET * HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "GET http://a/ HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "CONNECT a:443 HTTP/1.1\r\nHost: h\r\n\r\n", "1 upgrade", NULL, NULL),
    C('q', "GET [::1]:80 HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", "0 error",
      "the parser takes any target form; the server answers 400 when the method does not allow it "
      "(RFC 9112 3.2)"),
    C('q', "GET / HTTP/1.1\r\r\nHost: h\r\n\r\n", "0 LINE_ENDING", NULL, NULL),
    C('q', "GET /\r\nHost: h\r\n\r\n", "0 VERSION", "1:0 ok",
      "exactly one SP between request-line parts (RFC 9112 3); no HTTP/0.9 simple requests"),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive upgrade\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:0,0 ok", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close foo\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:0,0 ok", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo close\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:0,0 ok", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close,foo\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1:0 closed", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\t,x\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1:0 closed", "2:0,0 ok",
      "OWS around a field value or list element is not part of it (RFC 9110 5.5, 5.6.1); llhttp "
      "rejects or misreads a trailing HTAB"),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: , , close ,\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1:0 closed", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1:0 closed", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, upgrade\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1 upgrade", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade \r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "1 upgrade", NULL, NULL),
    C('q',
      "GET / HTTP/1.1\r\nHost: h\r\nConnection: close;x\r\nUpgrade: ws\r\n\r\nGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:0,0 ok", NULL, NULL),
    C('q',
      "GET / HTTP/1.0\r\nHost: h\r\nConnection: close, keep-alive\r\n\r\nGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "1:0 closed", "2:0,0 ok", "\"close\" wins over \"keep-alive\" (RFC 9112 9.6)"),
    C('q',
      "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\nGET /n HTTP/1.1\r\nHost: "
      "h\r\n\r\n",
      "2:0,0 ok", NULL, NULL),
    C('q', "POST / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HOST_DUP", "1:0 error", "HTTP/1.1 needs exactly one Host (RFC 9112 3.2): 400"),
    C('q', "POST / HTTP/1.1\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n", "0 HOST_MISSING",
      "1:0 error", "HTTP/1.1 needs exactly one Host (RFC 9112 3.2): 400"),
    C('q', "POST / HTTP/1.1\r\nHost:\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n", "2:0,0 ok",
      "1:0 error", "\"helloGET\" is a valid method token; llhttp knows only a fixed list"),
    C('q', "POST / HTTP/1.1\r\nHost : h\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 SPACE_BEFORE_COLON", NULL, NULL),
    C('q', "POST / HTTP/1.1\r\nHost: h\r\n X: y\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 OBS_FOLD", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 OBS_FOLD", NULL, NULL),
    C('q', "POST / HTTP/1.1\r\nHost: h\r\nX\x00: y\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HEADER_NAME", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nX: a\x7f"
      "b\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 HEADER_VALUE", NULL, NULL),
    C('q', "POST / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "0 LINE_ENDING", NULL, NULL),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nX: \x80\xff\r\n\r\nhelloGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:0,0 ok", "1:0 error",
      "\"helloGET\" is a valid method token; llhttp knows only a fixed list"),
    C('q',
      "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhelloGET /n "
      "HTTP/1.1\r\nHost: h\r\n\r\n",
      "2:5,0 ok", NULL, NULL),
    C('q', "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "1:0 ok", NULL, NULL),
    C('q', "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "0 LINE_ENDING", "1:0 ok",
      "a bare LF is no line ending, not even an empty line before a request (RFC 9112 2.2 allows "
      "either)"),
    C('q', "GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n", "2:0,0 ok",
      NULL, NULL),
    C('q', "GET / HTTP/1.1\r\nHost: h\r\n\r\n\nGET /n HTTP/1.1\r\nHost: h\r\n\r\n",
      "1:0 LINE_ENDING", "2:0,0 ok",
      "a bare LF is no line ending, not even an empty line before a request (RFC 9112 2.2 allows "
      "either)"),
    C('q', "GET / HTTP/1.1\nHost: h\n\n", "0 LINE_ENDING", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 099 X\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", "2:5,2 ok", "a status code is 100 to 999 (RFC 9110 15)"),
    C('r',
      "HTTP/1.1 1000 X\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", NULL, NULL),
    C('r',
      "HTTP/1.1 20 X\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", NULL, NULL),
    C('r',
      "HTTP/1.1 200\tOK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", NULL, NULL),
    C('r',
      "HTTP/1.1  200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", NULL, NULL),
    C('r',
      "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:5 closed", NULL, NULL),
    C('r',
      "HTTP/2.0 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 VERSION_UNSUPPORTED", "1:5 closed", "only HTTP/1.x is parsed: 505 (RFC 9110 15.6.6)"),
    C('r',
      "HTTP/1.2 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", "0 error",
      "a higher HTTP/1 minor version is served as 1.1 (RFC 9110 2.5); llhttp strict rejects it"),
    C('r',
      "http/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 VERSION", NULL, NULL),
    C('r',
      "HTTP/1.1 999 X\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\x00\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", "2:5,2 ok", "the reason phrase is HTAB / SP / VCHAR / obs-text (RFC 9112 4)"),
    C('r',
      "HTTP/1.1 200 O\x7fK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 STATUS", "2:5,2 ok", "the reason phrase is HTAB / SP / VCHAR / obs-text (RFC 9112 4)"),
    C('r',
      "HTTP/1.1 200 \x80\xff\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:0 VERSION", NULL, NULL),
    C('r',
      "HTTP/1.1 304 NM\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:0 VERSION", NULL, NULL),
    C('r',
      "HTTP/1.1 100 C\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:0 VERSION", NULL, NULL),
    C('r',
      "HTTP/1.1 101 S\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1 upgrade", "1:0 eof",
      "1xx responses have no content (RFC 9112 6.3 item 1); llhttp reads a body for some"),
    C('r',
      "HTTP/1.1 103 E\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:0 VERSION", NULL, NULL),
    C('r',
      "HTTP/1.1 199 X\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:0 VERSION", "2:5,2 ok",
      "1xx responses have no content (RFC 9112 6.3 item 1); llhttp reads a body for some"),
    C('r', "HTTP/1.1 200 OK\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", "1:45 ok",
      NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "1:45 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "1:45 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "0 CHUNK_SIZE", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "0 CONTENT_LENGTH", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "0 CONTENT_LENGTH_DUP", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "0 CL_WITH_TE", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "1:5 closed", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "1:45 ok", NULL, NULL),
    C('r',
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "0 OBS_FOLD", NULL, NULL),
    C('h',
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('h',
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('h',
      "HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('h',
      "HTTP/1.1 204 No\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('h',
      "HTTP/1.1 304 NM\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('h',
      "HTTP/1.1 304 NM\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: "
      "2\r\n\r\nhi",
      "2:0,0 VERSION", NULL, NULL),
    C('r', "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "1:5 ok",
      NULL, NULL),
    C('r',
      "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 "
      "OK\r\nContent-Length: 2\r\n\r\nhi",
      "2:5,2 ok", NULL, NULL),
};

static const char *perr_name(int code)
{
    switch (code) {
#define XX(name, val, status, msg)                                                                 \
    case val:                                                                                      \
        return #name;
        LOOM_HTTP_PERR_MAP(XX)
#undef XX
    default:
        return "?";
    }
}

static size_t skip_crlfs(const char *p, size_t off, size_t len)
{
    while (off + 1 < len && p[off] == '\r' && p[off + 1] == '\n')
        off += 2;
    return off;
}

/* A head parse of buf[off..avail), the previous attempt having seen
 * buf[off..off + last). Fills *fr on success. */
static int parse_head(const dcase_t *c, const char *buf, size_t off, size_t avail, size_t last,
                      loom_http_framing_t *fr)
{
    loom_http_header_t h[64];
    size_t nh = 64;
    int r;
    if (c->mode == 'q') {
        loom_http_request_t q;
        r = loom_http_parse_request(buf + off, avail - off, last, &q, h, &nh, NULL);
        if (r > 0)
            loom_http_request_framing(&q, fr);
    } else {
        loom_http_response_t s;
        r = loom_http_parse_response(buf + off, avail - off, last, &s, h, &nh, NULL);
        if (r > 0)
            loom_http_response_framing(
                &s, c->mode == 'h' ? LOOM_HTTP_METHOD_HEAD : LOOM_HTTP_METHOD_GET, fr);
    }
    return r;
}

/* Parses the input as a connection would and writes the verdict into out.
 * With `trickle` the bytes arrive one at a time (heads are parsed again with
 * the last_len hint, body bytes are presented as they come); the verdict
 * must not depend on it. */
static void run(const dcase_t *c, int trickle, char *out, size_t cap)
{
    /* A heap copy of exactly the input, so ASan sees any over-read. */
    char *buf = malloc(c->len ? c->len : 1);
    CHECK(buf != NULL);
    memcpy(buf, c->in, c->len);
    size_t off = 0, n = 0, avail = trickle ? 0 : c->len;
    int nmsg = 0;
    char bodies[256] = "";
    const char *end = "ok";
    for (;;) {
        if (skip_crlfs(buf, off, c->len) == c->len)
            break; /* "ok": only empty lines are left */
        loom_http_framing_t fr;
        size_t last = 0;
        int r;
        for (;;) {
            if (avail < off)
                avail = off;
            r = parse_head(c, buf, off, avail, last, &fr);
            if (r != LOOM_HTTP_INCOMPLETE || avail == c->len)
                break;
            last = avail - off;
            avail++;
        }
        if (r == LOOM_HTTP_INCOMPLETE && last != 0)
            r = parse_head(c, buf, off, avail, 0, &fr); /* EOF: the full verdict */
        if (r == LOOM_HTTP_INCOMPLETE) {
            end = "eof";
            break;
        }
        if (r < 0) {
            end = perr_name(r);
            break;
        }
        off += (size_t)r;
        if (fr.upgrade || fr.tunnel) {
            nmsg++;
            end = "upgrade";
            break;
        }
        loom_http_body_t b;
        int k = loom_http_body_init(&b, &fr, NULL);
        uint64_t total = 0;
        while (k == 0 && !loom_http_body_done(&b)) {
            loom_http_body_out_t o;
            memset(&o, 0, sizeof o);
            if (avail < off)
                avail = off;
            k = loom_http_body_parse(&b, buf + off, avail - off, &o);
            if (k < 0)
                break;
            off += (size_t)k;
            total += o.data_len;
            if (k == 0 && o.data_len == 0 && !o.done) {
                if (avail < c->len) {
                    avail++; /* more bytes needed: the next one arrives */
                    continue;
                }
                k = loom_http_body_finish(&b);
                if (k < 0)
                    k = LOOM_HTTP_INCOMPLETE;
                break;
            }
            k = 0;
        }
        if (k == LOOM_HTTP_INCOMPLETE) {
            end = "eof";
            break;
        }
        if (k < 0) {
            end = perr_name(k);
            break;
        }
        nmsg++;
        n = strlen(bodies);
        snprintf(bodies + n, sizeof bodies - n, "%s%llu", n ? "," : "", (unsigned long long)total);
        if (fr.kind == LOOM_HTTP_BODY_UNTIL_CLOSE)
            break; /* the body ran to the end of the input */
        if (!fr.keep_alive) {
            end = skip_crlfs(buf, off, c->len) == c->len ? "ok" : "closed";
            break;
        }
    }
    snprintf(out, cap, "%d%s%s %s", nmsg, bodies[0] ? ":" : "", bodies, end);
    free(buf);
}

int main(void)
{
    int failed = 0, differ = 0;
    size_t ncases = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < ncases; i++) {
        const dcase_t *c = &cases[i];
        char got[320], trickled[320];
        run(c, 0, got, sizeof got);
        run(c, 1, trickled, sizeof trickled);
        if (strcmp(got, c->loom) != 0 || strcmp(trickled, c->loom) != 0) {
            printf("FAIL  case %zu (%c): got \"%s\" (byte by byte: \"%s\"), want \"%s\"\n"
                   "      input: ",
                   i, c->mode, got, trickled, c->loom);
            for (size_t j = 0; j < c->len && j < 160; j++) {
                unsigned char ch = (unsigned char)c->in[j];
                if (ch >= 0x20 && ch < 0x7f)
                    putchar(ch);
                else
                    printf("\\x%02x", ch);
            }
            printf("\n");
            failed++;
        }
        if (c->llhttp) {
            differ++;
            CHECK(c->why != NULL);
        }
    }
    printf("differential: %zu cases, %d where llhttp differs by design, %d failed\n", ncases,
           differ, failed);
    CHECK_EQ(failed, 0);
    return 0;
}
