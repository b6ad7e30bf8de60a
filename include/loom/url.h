/* loom/url.h - URL parsing, reference resolution, percent-encoding and query
 * strings (RFC 3986), shared by the HTTP client and server.
 *
 * Like the HTTP parser, these functions do no I/O and no allocation: the
 * parser returns slices (pointer + length) of the caller's string, and the
 * encoders write into a caller-supplied buffer. Every function is pure and
 * may be called from any thread.
 *
 * Output buffers follow snprintf's rule: a function that writes text returns
 * the length the complete result needs (without the terminating NUL); when
 * that length is below `size` the result was written and NUL-terminated,
 * otherwise the caller should retry with a buffer of at least that length + 1.
 * Errors are negative LOOM_E* codes.
 */
#ifndef LOOM_URL_H
#define LOOM_URL_H

#include <stddef.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags loom_url_parse() sets in loom_url_t.flags. */
enum {
    LOOM_URL_F_AUTHORITY = 1u << 0, /* "//" authority present (host may still be empty) */
    LOOM_URL_F_USERINFO = 1u << 1,  /* "user[:password]@" present */
    LOOM_URL_F_PORT = 1u << 2,      /* an explicit, non-empty port */
    LOOM_URL_F_IPV6 = 1u << 3,      /* the host was a bracketed IP literal */
    LOOM_URL_F_QUERY = 1u << 4,     /* "?" present (the query may be empty) */
    LOOM_URL_F_FRAGMENT = 1u << 5   /* "#" present (the fragment may be empty) */
};

/* A parsed URL: slices of the string given to loom_url_parse(). Absent parts
 * have a NULL pointer and length 0 (check .flags to tell "absent" from
 * "empty" for the query and fragment). The delimiters ("://", "@", ":", "?",
 * "#") are not part of any slice. */
typedef struct loom_url {
    const char *scheme; /* as written; compare case-insensitively */
    size_t scheme_len;
    const char *userinfo; /* still percent-encoded */
    size_t userinfo_len;
    const char *host; /* without the brackets of an IPv6 literal; may be percent-encoded */
    size_t host_len;
    int port;         /* the explicit port (0..65535), or -1 if none */
    const char *path; /* still percent-encoded; may be empty ("http://h") */
    size_t path_len;
    const char *query; /* without the '?' */
    size_t query_len;
    const char *fragment; /* without the '#' */
    size_t fragment_len;
    unsigned flags; /* LOOM_URL_F_* */
} loom_url_t;

/* Parses the absolute URL `s[0..len)` (RFC 3986 "absolute-URI" with an
 * optional fragment): a scheme, then an optional "//" authority with
 * userinfo, host (a name, an IPv4 address or a bracketed IPv6 literal) and
 * port, then path, query and fragment. Characters below 0x21 and DEL are
 * rejected anywhere; bytes 0x80-0xFF are accepted in the path, query and
 * fragment (an HTTP client percent-encodes them when it sends the target).
 * `len` may be (size_t)-1 for a NUL-terminated string. Returns 0 and fills
 * `*out` (whose slices point into `s`), or LOOM_EURL for a malformed URL
 * (no scheme, a bad character, an unterminated '[', a bad IPv6 literal, a
 * port that is not 0..65535 digits). Any thread. */
LOOM_EXTERN int loom_url_parse(const char *s, size_t len, loom_url_t *out);

/* Returns the URL's port: the explicit one if set, else the scheme's default
 * (80 for http and ws, 443 for https and wss, 21 for ftp), else 0. Any thread. */
LOOM_EXTERN int loom_url_port(const loom_url_t *url);

/* Resolves the reference `ref[0..ref_len)` (absolute, or relative such as
 * "/a", "../b?q", "//host/p", "?q", "") against the absolute `base`, as RFC
 * 3986 section 5.2 says (including dot-segment removal), and writes the
 * absolute URL (without the reference's fragment if `drop_fragment`) into
 * out[0..size). An HTTP client uses it for a Location header. `ref_len` may
 * be (size_t)-1 for a NUL-terminated string. Returns the length of the result
 * (snprintf rule, see above), LOOM_EURL if `ref` is malformed, or
 * LOOM_ETOOBIG if the result would be longer than INT_MAX. `out` may be NULL
 * when `size` is 0. Any thread. */
LOOM_EXTERN int loom_url_resolve(const loom_url_t *base, const char *ref, size_t ref_len,
                                 int drop_fragment, char *out, size_t size);

/* Flags for loom_url_encode() and loom_url_decode(). */
enum {
    /* Encoding: which characters stay as they are. With no flag only the
     * unreserved characters (ALPHA DIGIT - . _ ~) do: the right choice for a
     * query value or a path segment built from arbitrary data. */
    LOOM_URL_ENC_PATH =
        1u << 0, /* also keep '/' and the other pchars (: @ ! $ & ' ( ) * + , ; =) */
    LOOM_URL_ENC_FORM = 1u << 1, /* application/x-www-form-urlencoded: space becomes '+' */
    /* Decoding. */
    LOOM_URL_DEC_PLUS = 1u << 2,      /* '+' decodes to a space (query strings, forms) */
    LOOM_URL_DEC_ALLOW_NUL = 1u << 3, /* accept "%00" (otherwise LOOM_EURL: C strings) */
    LOOM_URL_DEC_LENIENT = 1u << 4    /* copy a malformed "%" escape through unchanged */
};

/* Percent-encodes `src[0..len)` into dst[0..size), upper-case hex, keeping
 * the characters `flags` allows (see LOOM_URL_ENC_*). Returns the encoded
 * length (snprintf rule; at most 3 * len), LOOM_EINVAL if `dst` is NULL
 * with a non-zero `size`, or LOOM_ETOOBIG if the encoded length would exceed
 * INT_MAX. Any thread. */
LOOM_EXTERN int loom_url_encode(char *dst, size_t size, const char *src, size_t len,
                                unsigned flags);

/* Percent-decodes `src[0..len)` into dst[0..size) and NUL-terminates it. The
 * result is never longer than the input, so `size` = len + 1 always suffices,
 * and `dst` may equal `src` (decoding in place). Returns the decoded length,
 * LOOM_ENOSPC if it does not fit with its NUL, or LOOM_EURL for a malformed
 * escape ('%' not followed by two hex digits, unless LOOM_URL_DEC_LENIENT)
 * or for "%00" (unless LOOM_URL_DEC_ALLOW_NUL), or LOOM_ETOOBIG if the
 * decoded length would exceed INT_MAX. Any thread. */
LOOM_EXTERN int loom_url_decode(char *dst, size_t size, const char *src, size_t len,
                                unsigned flags);

/* One raw query parameter: slices of the query string, still encoded. The
 * value of "flag" (no '=') is empty with has_value 0. */
typedef struct loom_url_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
    int has_value;
} loom_url_param_t;

/* Iterates over the '&'-separated parameters of `query[0..len)` (without the
 * '?'); empty parameters ("a=1&&b=2") are skipped. `*pos` starts at 0.
 * Returns 1 and fills `*out` with the next parameter, or 0 at the end. Any
 * thread. */
LOOM_EXTERN int loom_url_query_next(const char *query, size_t len, size_t *pos,
                                    loom_url_param_t *out);

/* Looks up the first parameter whose decoded name (with '+' as space) equals
 * the NUL-terminated `name`, and decodes its value (with '+' as space) into
 * buf[0..size), NUL-terminated. Returns the decoded length, LOOM_ENOENT if no
 * parameter has that name, LOOM_ENOSPC if the value does not fit (size =
 * value length + 1 always suffices), or LOOM_EURL for a malformed escape in
 * the value. `buf` may be NULL with `size` 0 to test for presence only (then
 * the raw value length is returned; LOOM_ETOOBIG if it exceeds INT_MAX).
 * O(len). Any thread. */
LOOM_EXTERN int loom_url_query_get(const char *query, size_t len, const char *name, char *buf,
                                   size_t size);

/* Returns 1 if the raw (encoded) `s[0..len)` decodes to the NUL-terminated
 * `name`, with '+' as a space when `flags` has LOOM_URL_DEC_PLUS; else 0.
 * Compares without a buffer. Any thread. */
LOOM_EXTERN int loom_url_decoded_equals(const char *s, size_t len, const char *name,
                                        unsigned flags);

#ifdef __cplusplus
}
#endif
#endif
