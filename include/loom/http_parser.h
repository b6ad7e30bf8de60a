/* loom/http_parser.h - HTTP/1.1 message parser: bytes in, slices out.
 *
 * The parser does no I/O and no allocation. Every string it reports is a
 * slice (pointer + length) into the caller's buffer, valid for as long as the
 * caller keeps those bytes where they are. All functions are pure or work only
 * on caller-owned state, so they may be called from any thread; distinct
 * objects may be used concurrently, one object from one thread at a time.
 *
 * A connection reads into a buffer and then, per message:
 *
 *   1. loom_http_parse_request() (or _response()) on the buffered bytes. It
 *      returns the length of the head once the head is complete,
 *      LOOM_HTTP_INCOMPLETE while more bytes are needed (call again with the
 *      grown buffer, passing the previous length as `last_len`), or a
 *      negative LOOM_HTTP_PERR_* code. loom_http_perr_status() tells a server
 *      which status to answer with.
 *   2. loom_http_request_framing() (or _response_framing()) says how the body
 *      is delimited and whether the connection stays open afterwards.
 *   3. loom_http_body_init() and loom_http_body_parse() walk the body: each
 *      call consumes some bytes and reports at most one slice of body data.
 *      Chunked bodies are decoded without copying: the data slices point into
 *      the caller's buffer between the chunk framing.
 *
 * Strictness (RFC 9110 / RFC 9112), which loom applies always:
 *   - Lines end in CRLF. A bare CR or a bare LF anywhere in the head, in a
 *     chunk line or in the trailers is an error. Empty lines (CRLF) before a
 *     request line or status line are skipped (RFC 9112 section 2.2).
 *   - Request line: token SP target SP "HTTP/" DIGIT "." DIGIT CRLF, with
 *     exactly one SP between the parts. The target is visible ASCII (0x21 to
 *     0x7E). Any method token is accepted (unknown ones as
 *     LOOM_HTTP_METHOD_OTHER; the server may answer 501). A major version
 *     other than 1 is LOOM_HTTP_PERR_VERSION_UNSUPPORTED (505); HTTP/0.9
 *     simple requests are not supported.
 *   - Status line: "HTTP/1.x" SP 3DIGIT [SP reason] CRLF; the reason may
 *     contain SP, HTAB, visible ASCII and obs-text.
 *   - Field names are tokens; whitespace before the colon, a line starting
 *     with whitespace (obs-fold, or whitespace after the start line), and
 *     control characters other than HTAB in values are errors. Values are
 *     reported without their leading and trailing whitespace. A client may
 *     accept obs-fold in responses with LOOM_HTTP_LIMIT_OBS_FOLD.
 *   - Content-Length is 1*DIGIT. A second Content-Length field, or a list
 *     ("5, 5"), is rejected even when the values agree, as nginx and llhttp
 *     do: accepting it buys nothing and widens the request-smuggling surface.
 *   - Content-Length together with Transfer-Encoding is rejected (requests and
 *     responses).
 *   - Requests: Transfer-Encoding whose last coding is not "chunked", or that
 *     names "chunked" twice, is 400; a coding other than chunked is
 *     LOOM_HTTP_PERR_TE_UNSUPPORTED (501, RFC 9112 section 6.1), since loom
 *     cannot decode it; Transfer-Encoding in an HTTP/1.0 request is 400.
 *     Responses: if the last coding is not chunked the body runs until the
 *     connection closes (RFC 9112 section 6.3); other codings are left to the
 *     application (LOOM_HTTP_F_TE_OTHER).
 *   - HTTP/1.1 requests must carry exactly one Host field (RFC 9112 section
 *     3.2); HTTP/1.0 requests may omit it.
 *
 * CONNECT and Upgrade: the parser reads the head as usual. For CONNECT the
 * request has no body (RFC 9110 section 9.3.6) and framing.tunnel is set:
 * after a 2xx answer the bytes that follow are tunnel data, not HTTP. A
 * request with "Connection: upgrade" and an Upgrade field sets
 * framing.upgrade: its body (if any) is framed as usual, and if the server
 * answers 101 the bytes after the body belong to the new protocol. A 101
 * response sets framing.upgrade and has no body.
 */
#ifndef LOOM_HTTP_PARSER_H
#define LOOM_HTTP_PARSER_H

#include <stddef.h>
#include <stdint.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The parse functions return this while the head (or a chunk line, or the
 * trailers) is not complete yet. It is not an error. */
#define LOOM_HTTP_INCOMPLETE (-2)

/* XX(name, value, http status a server should answer, message) */
#define LOOM_HTTP_PERR_MAP(XX)                                                                     \
    XX(METHOD, -5001, 400, "invalid method token")                                                 \
    XX(TARGET, -5002, 400, "invalid request target")                                               \
    XX(VERSION, -5003, 400, "malformed http version")                                              \
    XX(VERSION_UNSUPPORTED, -5004, 505, "unsupported http major version")                          \
    XX(STATUS, -5005, 400, "invalid status line")                                                  \
    XX(LINE_ENDING, -5006, 400, "bare CR or LF, or missing CRLF")                                  \
    XX(HEADER_NAME, -5007, 400, "invalid header field name")                                       \
    XX(SPACE_BEFORE_COLON, -5008, 400, "whitespace between header field name and colon")           \
    XX(HEADER_VALUE, -5009, 400, "invalid character in header field value")                        \
    XX(OBS_FOLD, -5010, 400, "header line starts with whitespace (obs-fold)")                      \
    XX(LINE_TOO_LONG, -5011, 414, "request line or status line too long")                          \
    XX(HEADERS_TOO_LARGE, -5012, 431, "header section too large")                                  \
    XX(TOO_MANY_HEADERS, -5013, 431, "too many header fields")                                     \
    XX(CONTENT_LENGTH, -5014, 400, "invalid Content-Length")                                       \
    XX(CONTENT_LENGTH_DUP, -5015, 400, "more than one Content-Length")                             \
    XX(CL_WITH_TE, -5016, 400, "Content-Length together with Transfer-Encoding")                   \
    XX(TRANSFER_ENCODING, -5017, 400, "invalid Transfer-Encoding")                                 \
    XX(TE_UNSUPPORTED, -5018, 501, "unsupported transfer coding")                                  \
    XX(HOST_MISSING, -5019, 400, "HTTP/1.1 request without Host")                                  \
    XX(HOST_DUP, -5020, 400, "more than one Host")                                                 \
    XX(CHUNK_SIZE, -5021, 400, "invalid chunk size")                                               \
    XX(CHUNK_EXT, -5022, 400, "invalid chunk extension")                                           \
    XX(CHUNK_EXT_TOO_LONG, -5023, 400, "chunk extension too long")                                 \
    XX(CHUNK_DATA_END, -5024, 400, "chunk data not followed by CRLF")                              \
    XX(BODY_TOO_LARGE, -5025, 413, "body too large")                                               \
    XX(UNEXPECTED_EOF, -5026, 400, "connection closed inside a message")                           \
    XX(STATE, -5027, 500, "body decoder used in the wrong state")                                  \
    XX(CHUNK_OVERHEAD, -5028, 400, "too many chunk framing bytes for the data")

/* Parser error codes: LOOM_HTTP_PERR_METHOD, ... All are below -5000, apart
 * from the loom_errno_t range, so they can travel in the same int. */
typedef enum loom_http_perr {
#define LOOM__HTTP_PERR_ENUM(name, val, status, msg) LOOM_HTTP_PERR_##name = (val),
    LOOM_HTTP_PERR_MAP(LOOM__HTTP_PERR_ENUM)
#undef LOOM__HTTP_PERR_ENUM
        LOOM__HTTP_PERR_UNUSED = 0
} loom_http_perr_t;

/* Returns a static message for a parser code, "incomplete" for
 * LOOM_HTTP_INCOMPLETE and "unknown parser error" otherwise. Thread-safe. */
LOOM_EXTERN const char *loom_http_perr_str(int code);

/* Returns the HTTP status a server should answer a request that failed with
 * `code` (400, 413, 414, 431, 501 or 505), or 0 when `code` is not a parser
 * error (including LOOM_HTTP_INCOMPLETE). Thread-safe. */
LOOM_EXTERN int loom_http_perr_status(int code);

typedef enum {
    LOOM_HTTP_METHOD_OTHER = 0, /* any other token; see method / method_len */
    LOOM_HTTP_METHOD_GET,
    LOOM_HTTP_METHOD_HEAD,
    LOOM_HTTP_METHOD_POST,
    LOOM_HTTP_METHOD_PUT,
    LOOM_HTTP_METHOD_DELETE,
    LOOM_HTTP_METHOD_CONNECT,
    LOOM_HTTP_METHOD_OPTIONS,
    LOOM_HTTP_METHOD_TRACE,
    LOOM_HTTP_METHOD_PATCH
} loom_http_method_t;

/* Returns the static name of a method ("GET"), or "OTHER". Thread-safe. */
LOOM_EXTERN const char *loom_http_method_str(loom_http_method_t m);

/* One header (or trailer) field: slices of the caller's buffer. The value has
 * no leading or trailing whitespace and may be empty. */
typedef struct {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} loom_http_header_t;

/* Flags the head parsers set in .flags while they read the fields that
 * matter for framing. */
enum {
    LOOM_HTTP_F_CONTENT_LENGTH = 1u << 0,  /* .content_length is valid */
    LOOM_HTTP_F_TE = 1u << 1,              /* a Transfer-Encoding field was seen */
    LOOM_HTTP_F_CHUNKED = 1u << 2,         /* the last transfer coding is chunked */
    LOOM_HTTP_F_TE_OTHER = 1u << 3,        /* a coding other than chunked is listed */
    LOOM_HTTP_F_CONN_CLOSE = 1u << 4,      /* Connection lists "close" */
    LOOM_HTTP_F_CONN_KEEP_ALIVE = 1u << 5, /* Connection lists "keep-alive" */
    LOOM_HTTP_F_CONN_UPGRADE = 1u << 6,    /* Connection lists "upgrade" */
    LOOM_HTTP_F_UPGRADE = 1u << 7,         /* an Upgrade field is present */
    LOOM_HTTP_F_HOST = 1u << 8,            /* a Host field is present (.host) */
    LOOM_HTTP_F_EXPECT_CONTINUE = 1u << 9, /* Expect: 100-continue */
    /* Responses parsed with LOOM_HTTP_LIMIT_OBS_FOLD: a field value was
     * folded, so its slice holds the CRLFs of the folds; replace each CR
     * and LF in it with SP before interpreting it (RFC 9112 section 5.2). */
    LOOM_HTTP_F_OBS_FOLD = 1u << 10
};

/* Limits and switches. A zeroed struct (or NULL) means the defaults. */
typedef struct {
    uint32_t max_request_line; /* start line incl. CRLF and skipped empty lines; 8192 -> 414 */
    uint32_t max_header_bytes; /* field lines + final CRLF (also trailers); 16384 -> 431 */
    uint32_t max_headers;      /* fields per head or trailer section; 100 -> 431 */
    uint32_t max_chunk_ext;    /* bytes of chunk extensions per chunk line; 1024 -> 400;
                                * also bounds the framing overhead, see loom_http_body_parse() */
    uint64_t max_body_size;    /* decoded body bytes; 1 MiB -> 413; UINT64_MAX: no limit */
    unsigned flags;            /* LOOM_HTTP_LIMIT_* */
} loom_http_limits_t;

enum {
    /* Accept HTTP/1.1 requests without Host (for proxies and tests). */
    LOOM_HTTP_LIMIT_ALLOW_NO_HOST = 1u << 0,
    /* Use the portable scalar scanner even where a SIMD one exists (tests). */
    LOOM_HTTP_LIMIT_SCALAR = 1u << 1,
    /* loom_http_parse_response() only (a user agent's side, RFC 9112 section
     * 5.2): accept obs-fold, a field line that starts with SP or HTAB and
     * continues the previous field's value. The value's slice then runs over
     * the folds (CRLF and whitespace included, the value's leading and
     * trailing whitespace and folds trimmed) and the response gets
     * LOOM_HTTP_F_OBS_FOLD: the caller replaces each CR and LF in such a
     * value with SP before use (loom's HTTP client does). A folded
     * Content-Length, Transfer-Encoding, Connection, Upgrade, Host or Expect
     * is still LOOM_HTTP_PERR_OBS_FOLD, as is whitespace before the first
     * field (RFC 9112 section 2.2) and folding in trailers. Requests are
     * always rejected with LOOM_HTTP_PERR_OBS_FOLD (400), as RFC 9112
     * section 5.2 allows. */
    LOOM_HTTP_LIMIT_OBS_FOLD = 1u << 2
};

typedef struct {
    loom_http_method_t method;
    const char *method_str; /* the method token as sent, always set */
    size_t method_len;
    const char *target; /* request-target as sent */
    size_t target_len;
    int minor_version;       /* HTTP/1.<minor_version> */
    unsigned flags;          /* LOOM_HTTP_F_* */
    uint64_t content_length; /* if flags & LOOM_HTTP_F_CONTENT_LENGTH */
    const char *host;        /* the Host value if flags & LOOM_HTTP_F_HOST */
    size_t host_len;
} loom_http_request_t;

typedef struct {
    int status; /* 100 to 999 */
    const char *reason;
    size_t reason_len;
    int minor_version;
    unsigned flags;
    uint64_t content_length;
} loom_http_response_t;

/* Parses a request head from buf[0..len).
 *
 * headers points to an array of *nheaders entries; on success *nheaders is
 * set to the number of fields found (more than the array holds, or more than
 * limits->max_headers, is LOOM_HTTP_PERR_TOO_MANY_HEADERS). last_len is the
 * length passed in the previous call for the same message (0 the first time):
 * while the head is unterminated the parser then only scans the new bytes for
 * the end of the head, so a head that trickles in costs linear time. With
 * last_len != 0 an error in an unterminated head may be reported only once the
 * head ends or a limit is passed; with 0 it is reported as soon as it is seen.
 *
 * Returns the number of bytes of the head (> 0, including skipped empty lines
 * and the final empty line) with *req and headers filled in,
 * LOOM_HTTP_INCOMPLETE, or a negative LOOM_HTTP_PERR_* code. limits may be
 * NULL. Nothing is retained between calls; req and headers point into buf. */
LOOM_EXTERN int loom_http_parse_request(const char *buf, size_t len, size_t last_len,
                                        loom_http_request_t *req, loom_http_header_t *headers,
                                        size_t *nheaders, const loom_http_limits_t *limits);

/* Parses a response head; the same contract as loom_http_parse_request(). */
LOOM_EXTERN int loom_http_parse_response(const char *buf, size_t len, size_t last_len,
                                         loom_http_response_t *res, loom_http_header_t *headers,
                                         size_t *nheaders, const loom_http_limits_t *limits);

typedef enum {
    LOOM_HTTP_BODY_NONE = 0,   /* no body; the message ends with its head */
    LOOM_HTTP_BODY_LENGTH,     /* exactly .length bytes */
    LOOM_HTTP_BODY_CHUNKED,    /* chunked transfer coding */
    LOOM_HTTP_BODY_UNTIL_CLOSE /* responses only: the body ends when the peer closes */
} loom_http_body_kind_t;

typedef struct {
    loom_http_body_kind_t kind;
    uint64_t length;   /* for LOOM_HTTP_BODY_LENGTH */
    int keep_alive;    /* another message may follow on this connection */
    int upgrade;       /* request: offers an upgrade; response: 101 Switching Protocols */
    int tunnel;        /* request: CONNECT (tunnel after a 2xx answer); response: 2xx to CONNECT */
    int informational; /* response: 1xx other than 101; the final response follows */
} loom_http_framing_t;

/* Computes how a parsed request's body is delimited and whether the
 * connection may carry another request afterwards (HTTP/1.1: unless
 * "Connection: close"; HTTP/1.0: only with "Connection: keep-alive";
 * Connection is a comma list, matched case-insensitively; an element of more
 * than one word, "keep-alive upgrade", matches nothing). Pure; thread-safe. */
LOOM_EXTERN void loom_http_request_framing(const loom_http_request_t *req,
                                           loom_http_framing_t *out);

/* Computes the framing of a parsed response to a request made with
 * req_method: no body after HEAD, for 1xx, 204 and 304; a 2xx answer to
 * CONNECT starts a tunnel; otherwise chunked, Content-Length or until close
 * (RFC 9112 section 6.3). Pure; thread-safe. */
LOOM_EXTERN void loom_http_response_framing(const loom_http_response_t *res,
                                            loom_http_method_t req_method,
                                            loom_http_framing_t *out);

/* Body decoder state, owned by the caller (no allocation); treat the fields
 * as private. */
typedef struct {
    uint64_t remaining; /* bytes left in the body or in the current chunk */
    uint64_t total;     /* body bytes delivered so far */
    uint64_t max_body;
    uint32_t max_ext;
    uint32_t max_header_bytes;
    uint32_t max_headers;
    uint32_t excess; /* chunked: framing bytes beyond the allowance so far */
    uint8_t kind;
    uint8_t state;
} loom_http_body_t;

/* What one loom_http_body_parse() call found. */
typedef struct {
    const char *data; /* body bytes (a slice of buf); data_len may be 0 */
    size_t data_len;
    const char *ext; /* chunked: raw extensions of a chunk line read by this call */
    size_t ext_len;  /* (from the first ';' or whitespace), NULL/0 if none */
    /* In: an array for the trailer fields and its capacity (may be NULL/0,
     * then trailers are checked and skipped). Out: number of trailer fields. */
    loom_http_header_t *trailers;
    size_t ntrailers;
    int done; /* the body is complete; bytes after it belong to the next message */
} loom_http_body_out_t;

/* Prepares a decoder for the body described by `framing`. Returns 0, or
 * LOOM_HTTP_PERR_BODY_TOO_LARGE if a Content-Length exceeds
 * limits->max_body_size. limits may be NULL. */
LOOM_EXTERN int loom_http_body_init(loom_http_body_t *b, const loom_http_framing_t *framing,
                                    const loom_http_limits_t *limits);

/* Decodes body bytes from buf[0..len). Returns the number of bytes consumed
 * (0 <= n <= len) and fills *out, or a negative LOOM_HTTP_PERR_* code. Each
 * call reports at most one chunk line and one slice of data; call again with
 * the unconsumed bytes (and whatever arrives next) until out->done. A return
 * of 0 with !out->done means more bytes are needed: a chunk line or the
 * trailer section is parsed only once it is complete, so the caller must keep
 * unconsumed bytes and present them again. out->data and the trailers point
 * into buf.
 *
 * Chunked framing may not cost much more than the data it carries: each
 * chunk line (with its extensions and CRLF) and the CRLF after the chunk's
 * data are free up to 32 bytes plus one byte per data byte of that chunk;
 * what goes beyond adds up, and more than 16 * limits->max_chunk_ext bytes of
 * it (16 KiB by default) is LOOM_HTTP_PERR_CHUNK_OVERHEAD. So a peer cannot
 * make the reader take in, say, a kilobyte of extensions for every byte of
 * body (the attack of CVE-2023-39326), while chunks of any size with short
 * extensions never come near the bound. */
LOOM_EXTERN int loom_http_body_parse(loom_http_body_t *b, const char *buf, size_t len,
                                     loom_http_body_out_t *out);

/* Tells the decoder the peer closed the connection. Returns 0 if the body is
 * complete (always so for LOOM_HTTP_BODY_UNTIL_CLOSE), otherwise
 * LOOM_HTTP_PERR_UNEXPECTED_EOF. */
LOOM_EXTERN int loom_http_body_finish(loom_http_body_t *b);

/* Returns 1 once the body is complete, 0 otherwise. */
LOOM_EXTERN int loom_http_body_done(const loom_http_body_t *b);

/* Iterates over the raw chunk extensions reported in out->ext (already
 * validated by the decoder). *pos starts at 0. Returns 1 and fills *out with
 * the next name and value (a quoted value keeps its quotes; a value may be
 * empty when absent), or 0 when there are no more. Pure; thread-safe. */
LOOM_EXTERN int loom_http_chunk_ext_next(const char *ext, size_t ext_len, size_t *pos,
                                         loom_http_header_t *out);

#ifdef __cplusplus
}
#endif
#endif
