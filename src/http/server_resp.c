/* http/server_resp.c - answers: whole (loom_http_respond), streamed, and
 * Server-Sent Events; the output buffer; status lines and the Date cache;
 * the header helpers shared with the client.
 *
 * An answer's head is built straight into the loop's output buffer: the
 * status line, the cached "Date: ...\r\n" line, the application's fields,
 * then Content-Length (or Transfer-Encoding: chunked) and Connection, all
 * sized in one pass over the fields and written in a second. A small body
 * is copied behind the head; a large one (over LOOM__HINLINE_MAX) goes out
 * with the head in one writev, so it is copied only if the kernel does not
 * take it at once. When the connection is the one being processed, the
 * bytes stay in the buffer and leave with every other answer of the batch.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http_internal.h"

#define LOOM__HINLINE_MAX (16 * 1024)

/* --- Status lines and dates -------------------------------------------------- */

const char *loom_http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 102:
        return "Processing";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 207:
        return "Multi-Status";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Content";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 507:
        return "Insufficient Storage";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}

size_t loom__http_status_line(int status, char *buf)
{
    if (LOOM__LIKELY(status == 200)) {
        memcpy(buf, "HTTP/1.1 200 OK\r\n", 17);
        return 17;
    }
    const char *reason = loom_http_status_reason(status);
    size_t rl = strlen(reason);
    memcpy(buf, "HTTP/1.1 ", 9);
    buf[9] = (char)('0' + status / 100 % 10);
    buf[10] = (char)('0' + status / 10 % 10);
    buf[11] = (char)('0' + status % 10);
    buf[12] = ' ';
    memcpy(buf + 13, reason, rl);
    buf[13 + rl] = '\r';
    buf[14 + rl] = '\n';
    return 15 + rl;
}

int loom_http_date(int64_t t, char *buf)
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL)
        memset(&tm, 0, sizeof tm);
    int y = tm.tm_year + 1900;
    memcpy(buf, days + 3 * (tm.tm_wday % 7), 3);
    buf[3] = ',';
    buf[4] = ' ';
    buf[5] = (char)('0' + tm.tm_mday / 10);
    buf[6] = (char)('0' + tm.tm_mday % 10);
    buf[7] = ' ';
    memcpy(buf + 8, months + 3 * (tm.tm_mon % 12), 3);
    buf[11] = ' ';
    buf[12] = (char)('0' + y / 1000 % 10);
    buf[13] = (char)('0' + y / 100 % 10);
    buf[14] = (char)('0' + y / 10 % 10);
    buf[15] = (char)('0' + y % 10);
    buf[16] = ' ';
    buf[17] = (char)('0' + tm.tm_hour / 10);
    buf[18] = (char)('0' + tm.tm_hour % 10);
    buf[19] = ':';
    buf[20] = (char)('0' + tm.tm_min / 10);
    buf[21] = (char)('0' + tm.tm_min % 10);
    buf[22] = ':';
    buf[23] = (char)('0' + tm.tm_sec / 10);
    buf[24] = (char)('0' + tm.tm_sec % 10);
    memcpy(buf + 25, " GMT", 5); /* with the NUL */
    return 29;
}

/* Refreshes the Date line when the wall clock has moved to another second:
 * one clock read per second per loop, not one per answer. */
static const char *loom__hsrv_date(loom__hsrv_loop *hl)
{
    uint64_t now = hl->loop->now;
    if (LOOM__UNLIKELY(now >= hl->date_next)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(hl->date, "Date: ", 6);
        loom_http_date((int64_t)ts.tv_sec, hl->date + 6);
        memcpy(hl->date + 35, "\r\n", 3);
        hl->date_next = now + 1000 - (uint64_t)(ts.tv_nsec / 1000000);
    }
    return hl->date;
}

const char *loom__http_date_now(loom_loop_t *loop)
{
    loom__hsrv_loop *hl = loom__hsrv_loop_get(loop);
    return hl ? loom__hsrv_date(hl) : NULL;
}

/* --- The output buffer ------------------------------------------------------------- */

int loom__hout_reserve(loom__hsrv_loop *hl, size_t n)
{
    if (LOOM__LIKELY(hl->ocap - hl->olen >= n))
        return 0;
    size_t cap = hl->ocap ? hl->ocap : 16 * 1024;
    while (cap - hl->olen < n)
        cap *= 2;
    char *b = realloc(hl->obuf, cap);
    if (b == NULL)
        return LOOM_ENOMEM;
    hl->obuf = b;
    hl->ocap = cap;
    return 0;
}

/* Sends obuf[from..olen) followed by `iov`: from 0 when `s` is the batch's
 * connection (its earlier answers go first), else from `start`. */
static int loom__hout_send(loom__hsrv_loop *hl, loom_socket_t *s, size_t start,
                           const struct iovec *iov, int n)
{
    size_t from = hl->batch == s ? 0 : start;
    struct iovec v[8];
    int k = 0;
    if (hl->olen > from) {
        v[k].iov_base = hl->obuf + from;
        v[k].iov_len = hl->olen - from;
        k++;
    }
    for (int i = 0; i < n && k < 8; i++)
        v[k++] = iov[i];
    int r = 0;
    if (k)
        r = loom_socket_writev(s, v, k);
    hl->olen = from;
    if (r < 0 && loom_socket_closed(s))
        loom__hconn_close(s, false);
    return r;
}

int loom__hout_commit(loom__hsrv_loop *hl, loom_socket_t *s, size_t start)
{
    if (hl->batch == s)
        return 0; /* leaves with the batch */
    return loom__hout_send(hl, s, start, NULL, 0);
}

int loom__hout_writev(loom__hsrv_loop *hl, loom_socket_t *s, const struct iovec *iov, int n)
{
    return loom__hout_send(hl, s, hl->olen, iov, n);
}

static char *loom__put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

static char *loom__put_u64(char *o, uint64_t v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *o++ = tmp[--i];
    return o;
}

int loom__hout_error(loom__hsrv_loop *hl, loom_socket_t *s, int status)
{
    if (loom_socket_closed(s))
        return LOOM_ECLOSED;
    const char *reason = loom_http_status_reason(status);
    size_t rl = strlen(reason);
    if (loom__hout_reserve(hl, 256 + 2 * rl) < 0)
        return LOOM_ENOMEM;
    size_t start = hl->olen;
    char *o = hl->obuf + start;
    o += loom__http_status_line(status, o);
    o = loom__put(o, loom__hsrv_date(hl), 37);
    o = loom__put(o, "Content-Type: text/plain\r\nContent-Length: ", 42);
    o = loom__put_u64(o, 4 + rl + 1);
    o = loom__put(o, "\r\nConnection: close\r\n\r\n", 23);
    /* The body: "413 Content Too Large\n". */
    o[0] = (char)('0' + status / 100 % 10);
    o[1] = (char)('0' + status / 10 % 10);
    o[2] = (char)('0' + status % 10);
    o[3] = ' ';
    o = loom__put(o + 4, reason, rl);
    *o++ = '\n';
    hl->olen = (size_t)(o - hl->obuf);
    return loom__hout_commit(hl, s, start);
}

int loom__hout_continue(loom__hsrv_loop *hl, loom_socket_t *s)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (loom__hout_reserve(hl, sizeof msg) < 0)
        return LOOM_ENOMEM;
    size_t start = hl->olen;
    memcpy(hl->obuf + start, msg, sizeof msg - 1);
    hl->olen += sizeof msg - 1;
    return loom__hout_commit(hl, s, start);
}

/* --- Answer heads ------------------------------------------------------------------- */

enum { LOOM__HK_OTHER = 0, LOOM__HK_CL, LOOM__HK_TE, LOOM__HK_CONN, LOOM__HK_DATE };

static int loom__hdr_kind(const char *name, size_t nl)
{
    switch (nl) {
    case 4:
        return strncasecmp(name, "date", 4) == 0 ? LOOM__HK_DATE : LOOM__HK_OTHER;
    case 10:
        return strncasecmp(name, "connection", 10) == 0 ? LOOM__HK_CONN : LOOM__HK_OTHER;
    case 14:
        return strncasecmp(name, "content-length", 14) == 0 ? LOOM__HK_CL : LOOM__HK_OTHER;
    case 17:
        return strncasecmp(name, "transfer-encoding", 17) == 0 ? LOOM__HK_TE : LOOM__HK_OTHER;
    default:
        return LOOM__HK_OTHER;
    }
}

/* What a pass over the application's fields found. The lengths of the
 * first LOOM__HSCAN_MAX fields are kept for the second pass. */
#define LOOM__HSCAN_MAX 16
typedef struct {
    size_t len;      /* bytes of the fields loom passes through */
    int64_t app_cl;  /* Content-Length given, or -1 */
    bool has_date;   /* a Date was given */
    bool conn_close; /* Connection: close was given */
    unsigned n;      /* fields seen so far (across both lists) */
    struct {
        uint32_t nl, vl;
        uint8_t kind;
    } f[LOOM__HSCAN_MAX];
} loom__hscan;

/* Length of a field name, or 0 if it is not a token. */
static size_t loom__name_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (!loom__http_name_stop[*p])
        p++;
    return *p ? 0 : (size_t)(p - (const unsigned char *)s);
}

/* Length of a field value, or (size_t)-1 if it holds a forbidden byte. */
static size_t loom__value_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (!loom__http_value_stop[*p])
        p++;
    return *p ? (size_t)-1 : (size_t)(p - (const unsigned char *)s);
}

static inline void loom__hscan_init(loom__hscan *sc)
{
    sc->len = 0;
    sc->app_cl = -1;
    sc->has_date = false;
    sc->conn_close = false;
    sc->n = 0;
}

static int loom__hdr_scan(const char *const *h, loom__hscan *sc)
{
    for (size_t i = 0; h && h[i]; i += 2) {
        const char *name = h[i], *value = h[i + 1];
        if (value == NULL)
            return LOOM_EINVAL;
        size_t nl = loom__name_len(name), vl = loom__value_len(value);
        if (nl == 0 || vl == (size_t)-1 || nl > UINT32_MAX / 2 || vl > UINT32_MAX / 2)
            return LOOM_EINVAL;
        int kind = loom__hdr_kind(name, nl);
        if (sc->n < LOOM__HSCAN_MAX) {
            sc->f[sc->n].nl = (uint32_t)nl;
            sc->f[sc->n].vl = (uint32_t)vl;
            sc->f[sc->n].kind = (uint8_t)kind;
        }
        sc->n++;
        switch (kind) {
        case LOOM__HK_CL: {
            uint64_t v = 0;
            size_t k = 0;
            while (k < vl && (value[k] == ' ' || value[k] == '\t'))
                k++;
            size_t d0 = k;
            while (k < vl && value[k] >= '0' && value[k] <= '9' && v < (UINT64_C(1) << 60))
                v = v * 10 + (uint64_t)(value[k++] - '0');
            while (k < vl && (value[k] == ' ' || value[k] == '\t'))
                k++;
            if (k != vl || k == d0)
                return LOOM_EINVAL;
            sc->app_cl = (int64_t)v;
            break;
        }
        case LOOM__HK_TE:
            break; /* loom chooses the framing */
        case LOOM__HK_CONN:
            if (loom_http_token_list_has(value, vl, "close"))
                sc->conn_close = true;
            break;
        case LOOM__HK_DATE:
            sc->has_date = true;
            sc->len += nl + vl + 4;
            break;
        default:
            sc->len += nl + vl + 4;
            break;
        }
    }
    return 0;
}

/* The second pass: writes the fields loom passes through. `*idx` counts
 * fields across both lists, to find the lengths the scan kept. */
static char *loom__hdr_write(char *o, const char *const *h, const loom__hscan *sc, unsigned *idx)
{
    for (size_t i = 0; h && h[i]; i += 2, (*idx)++) {
        size_t nl, vl;
        int kind;
        if (*idx < LOOM__HSCAN_MAX) {
            nl = sc->f[*idx].nl;
            vl = sc->f[*idx].vl;
            kind = sc->f[*idx].kind;
        } else {
            nl = strlen(h[i]);
            vl = strlen(h[i + 1]);
            kind = loom__hdr_kind(h[i], nl);
        }
        if (kind != LOOM__HK_OTHER && kind != LOOM__HK_DATE)
            continue;
        o = loom__put(o, h[i], nl);
        *o++ = ':';
        *o++ = ' ';
        o = loom__put(o, h[i + 1], vl);
        *o++ = '\r';
        *o++ = '\n';
    }
    return o;
}

/* Framing of an answer head. */
enum { LOOM__HF_NONE = 0, LOOM__HF_LENGTH, LOOM__HF_CHUNKED };

/* Writes an answer head into the output buffer (reserving `extra` more
 * bytes behind it). Returns the offset where it starts, or LOOM_ENOMEM. */
static long loom__hresp_head(loom_http_req_t *req, int status, const char *const *pre,
                             const char *const *hdrs, const loom__hscan *sc, int framing,
                             uint64_t length, size_t extra)
{
    loom_http_server_t *srv = req->srv;
    loom__hsrv_loop *hl = srv->hl;
    size_t sn = srv->server_name_len;
    size_t need = 64 + 40 + (sn ? sn + 10 : 0) + sc->len + 48 + 32 + extra;
    if (loom__hout_reserve(hl, need) < 0)
        return LOOM_ENOMEM;
    size_t start = hl->olen;
    char *o = hl->obuf + start;
    o += loom__http_status_line(status, o);
    if (!sc->has_date)
        o = loom__put(o, loom__hsrv_date(hl), 37);
    if (sn) {
        o = loom__put(o, "Server: ", 8);
        o = loom__put(o, srv->o.server_name, sn);
        o = loom__put(o, "\r\n", 2);
    }
    unsigned idx = 0;
    o = loom__hdr_write(o, pre, sc, &idx);
    o = loom__hdr_write(o, hdrs, sc, &idx);
    if (framing == LOOM__HF_LENGTH) {
        o = loom__put(o, "Content-Length: ", 16);
        o = loom__put_u64(o, length);
        o = loom__put(o, "\r\n", 2);
    } else if (framing == LOOM__HF_CHUNKED) {
        o = loom__put(o, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (req->flags & LOOM__HR_CLOSE)
        o = loom__put(o, "Connection: close\r\n\r\n", 21);
    else if (req->rq.minor_version == 0)
        o = loom__put(o, "Connection: keep-alive\r\n\r\n", 26);
    else
        o = loom__put(o, "\r\n", 2);
    hl->olen = (size_t)(o - hl->obuf);
    return (long)start;
}

/* Decides whether the connection ends with this answer. */
static void loom__hresp_close(loom_http_req_t *req, const loom__hscan *sc)
{
    /* A body still arriving does not decide it: once the answer is complete
     * the rest is read and dropped (loom__hreq_discard), within a bound. A
     * client waiting for 100 Continue may never send it, though. */
    if (!req->fr.keep_alive || req->srv->closing || sc->conn_close ||
        (req->bstate == LOOM__HB_READ && (req->flags & LOOM__HR_NOCONT)))
        req->flags |= LOOM__HR_CLOSE;
}

static bool loom__status_nobody(int status)
{
    return status == 204 || status == 304;
}

/* --- Whole answers ------------------------------------------------------------------- */

int loom_http_respond(loom_http_req_t *req, int status, const char *const *headers,
                      const void *body, size_t len)
{
    if (req == NULL || (len && body == NULL))
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_NONE)
        return LOOM_ESTATE;
    if (status == 0)
        status = 200;
    if (status < 200 || status > 999)
        return LOOM_EINVAL;
    loom__hscan sc;
    loom__hscan_init(&sc);
    if (loom__hdr_scan(headers, &sc) < 0)
        return LOOM_EINVAL;
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE)) {
        loom__hreq_answered(req);
        return LOOM_ECLOSED;
    }
    loom_socket_t *s = req->sock;
    loom__hsrv_loop *hl = req->srv->hl;
    bool head_req = req->rq.method == LOOM_HTTP_METHOD_HEAD;
    bool nobody = head_req || loom__status_nobody(status);
    int framing = LOOM__HF_LENGTH;
    uint64_t length = len;
    if (status == 204)
        framing = LOOM__HF_NONE;
    else if (len == 0 && sc.app_cl >= 0 && (head_req || status == 304))
        length = (uint64_t)sc.app_cl;
    else if (status == 304)
        framing = LOOM__HF_NONE;
    loom__hresp_close(req, &sc);
    bool inl = !nobody && len <= LOOM__HINLINE_MAX;
    long start = loom__hresp_head(req, status, NULL, headers, &sc, framing, length, inl ? len : 0);
    int r;
    if (start < 0) {
        req->flags |= LOOM__HR_CLOSE;
        r = LOOM_ENOMEM;
    } else if (nobody || len == 0) {
        r = loom__hout_commit(hl, s, (size_t)start);
    } else if (inl) {
        memcpy(hl->obuf + hl->olen, body, len);
        hl->olen += len;
        r = loom__hout_commit(hl, s, (size_t)start);
    } else {
        struct iovec iov = {.iov_base = (void *)body, .iov_len = len};
        r = loom__hout_send(hl, s, (size_t)start, &iov, 1);
    }
    loom__hreq_answered(req);
    return r < 0 ? r : 0;
}

/* --- Streamed answers ----------------------------------------------------------------- */

static int loom__hresp_start(loom_http_req_t *req, int status, const char *const *pre,
                             const char *const *headers)
{
    if (req == NULL)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_NONE)
        return LOOM_ESTATE;
    if (status == 0)
        status = 200;
    if (status < 200 || status > 999)
        return LOOM_EINVAL;
    loom__hscan sc;
    loom__hscan_init(&sc);
    if (loom__hdr_scan(pre, &sc) < 0 || loom__hdr_scan(headers, &sc) < 0)
        return LOOM_EINVAL;
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    loom_socket_t *s = req->sock;
    loom__hsrv_loop *hl = req->srv->hl;
    bool head_req = req->rq.method == LOOM_HTTP_METHOD_HEAD;
    int framing;
    uint64_t length = 0;
    if (head_req || loom__status_nobody(status))
        req->flags |= LOOM__HR_NOBODY;
    if (status == 204 || (status == 304 && sc.app_cl < 0)) {
        framing = LOOM__HF_NONE;
    } else if (sc.app_cl >= 0) {
        framing = LOOM__HF_LENGTH;
        length = (uint64_t)sc.app_cl;
        req->out_left = length;
    } else if (req->rq.minor_version >= 1) {
        framing = LOOM__HF_CHUNKED;
        req->flags |= LOOM__HR_CHUNKED;
    } else {
        framing = LOOM__HF_NONE;
        req->flags |= LOOM__HR_UNTIL_CLOSE | LOOM__HR_CLOSE;
    }
    loom__hresp_close(req, &sc);
    long start = loom__hresp_head(req, status, pre, headers, &sc, framing, length, 0);
    if (start < 0)
        return LOOM_ENOMEM;
    req->astate = LOOM__HA_STREAM;
    int r = loom__hout_commit(hl, s, (size_t)start);
    return r < 0 ? r : 0;
}

int loom_http_response_start(loom_http_req_t *req, int status, const char *const *headers)
{
    return loom__hresp_start(req, status, NULL, headers);
}

/* Common checks of the streamed writers: 1 to go on, 0 to do nothing, or a
 * LOOM_E* code. */
static int loom__hresp_writable(loom_http_req_t *req)
{
    if (req == NULL)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_STREAM)
        return (req->flags & LOOM__HR_GONE) ? LOOM_ECLOSED : LOOM_ESTATE;
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    if (req->flags & LOOM__HR_NOBODY)
        return 0;
    return 1;
}

int loom_http_response_write(loom_http_req_t *req, const void *data, size_t len)
{
    int ok = loom__hresp_writable(req);
    if (ok <= 0 || len == 0)
        return ok;
    if (data == NULL)
        return LOOM_EINVAL;
    loom__hsrv_loop *hl = req->srv->hl;
    if (!(req->flags & (LOOM__HR_CHUNKED | LOOM__HR_UNTIL_CLOSE))) {
        if (len > req->out_left)
            return LOOM_ESTATE;
        req->out_left -= len;
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        return loom__hout_writev(hl, req->sock, &iov, 1);
    }
    if (req->flags & LOOM__HR_UNTIL_CLOSE) {
        struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
        return loom__hout_writev(hl, req->sock, &iov, 1);
    }
    char hex[LOOM__HTTP_CHUNK_LINE];
    size_t hn = loom__http_chunk_line(hex, len);
    struct iovec iov[3] = {{.iov_base = hex, .iov_len = hn},
                           {.iov_base = (void *)data, .iov_len = len},
                           {.iov_base = (void *)"\r\n", .iov_len = 2}};
    return loom__hout_writev(hl, req->sock, iov, 3);
}

int loom_http_response_end(loom_http_req_t *req)
{
    if (req == NULL)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_STREAM) {
        if (req->astate == LOOM__HA_NONE && (req->flags & LOOM__HR_GONE)) {
            loom__hreq_answered(req);
            return LOOM_ECLOSED;
        }
        return LOOM_ESTATE;
    }
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE)) {
        loom__hreq_answered(req);
        return LOOM_ECLOSED;
    }
    int r = 0;
    if ((req->flags & (LOOM__HR_CHUNKED | LOOM__HR_NOBODY)) == LOOM__HR_CHUNKED) {
        loom__hsrv_loop *hl = req->srv->hl;
        if (loom__hout_reserve(hl, 5) < 0) {
            req->flags |= LOOM__HR_CLOSE;
            r = LOOM_ENOMEM;
        } else {
            size_t start = hl->olen;
            memcpy(hl->obuf + start, "0\r\n\r\n", 5);
            hl->olen += 5;
            r = loom__hout_commit(hl, req->sock, start);
        }
    } else if (!(req->flags & (LOOM__HR_CHUNKED | LOOM__HR_UNTIL_CLOSE | LOOM__HR_NOBODY)) &&
               req->out_left > 0) {
        req->flags |= LOOM__HR_CLOSE; /* short body: only closing tells the client */
    }
    loom__hreq_answered(req);
    return r < 0 ? r : 0;
}

/* --- Server-Sent Events ---------------------------------------------------------------- */

int loom_http_sse_start(loom_http_req_t *req, const char *const *headers)
{
    static const char *const pre[] = {"Content-Type", "text/event-stream", "Cache-Control",
                                      "no-cache", NULL};
    return loom__hresp_start(req, 200, pre, headers);
}

/* Sends an event body already laid out as `n` pieces (each followed by its
 * separator) through the answer's framing, in one write. */
static int loom__sse_emit(loom_http_req_t *req, const char *const *parts, const size_t *lens, int n,
                          size_t total)
{
    loom__hsrv_loop *hl = req->srv->hl;
    bool chunked = (req->flags & LOOM__HR_CHUNKED) != 0;
    if (!chunked && !(req->flags & LOOM__HR_UNTIL_CLOSE)) {
        if (total > req->out_left)
            return LOOM_ESTATE;
        req->out_left -= total;
    }
    if (loom__hout_reserve(hl, total + 32) < 0)
        return LOOM_ENOMEM;
    size_t start = hl->olen;
    char *o = hl->obuf + start;
    if (chunked)
        o += loom__http_chunk_line(o, total);
    for (int i = 0; i < n; i++)
        o = loom__put(o, parts[i], lens[i]);
    if (chunked) {
        *o++ = '\r';
        *o++ = '\n';
    }
    hl->olen = (size_t)(o - hl->obuf);
    return loom__hout_commit(hl, req->sock, start);
}

int loom_http_sse_send(loom_http_req_t *req, const char *event, const char *data)
{
    int ok = loom__hresp_writable(req);
    if (ok <= 0)
        return ok;
    size_t el = event ? strlen(event) : 0;
    for (size_t i = 0; i < el; i++)
        if (event[i] == '\r' || event[i] == '\n')
            return LOOM_EINVAL;
    /* Lay the event out in a buffer of its own: "event: e\n", one "data:
     * line\n" per line (CR, LF and CRLF all end a line in SSE), "\n". */
    size_t dl = data ? strlen(data) : 0;
    size_t lines = 1;
    for (size_t i = 0; i < dl; i++)
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 >= dl || data[i + 1] != '\n')))
            lines++;
    size_t total = (el ? 8 + el : 0) + dl + lines * 7 + 1;
    char stackbuf[1024];
    char *buf = total <= sizeof stackbuf ? stackbuf : malloc(total);
    if (buf == NULL)
        return LOOM_ENOMEM;
    char *o = buf;
    if (el) {
        o = loom__put(o, "event: ", 7);
        o = loom__put(o, event, el);
        *o++ = '\n';
    }
    size_t i = 0;
    do {
        size_t j = i;
        while (j < dl && data[j] != '\n' && data[j] != '\r')
            j++;
        o = loom__put(o, "data: ", 6);
        o = loom__put(o, data ? data + i : "", j - i);
        *o++ = '\n';
        if (j < dl && data[j] == '\r' && j + 1 < dl && data[j + 1] == '\n')
            j++;
        i = j + 1;
    } while (i <= dl && dl);
    *o++ = '\n';
    const char *parts[1] = {buf};
    size_t lens[1] = {(size_t)(o - buf)};
    int r = loom__sse_emit(req, parts, lens, 1, lens[0]);
    if (buf != stackbuf)
        free(buf);
    return r;
}

int loom_http_sse_comment(loom_http_req_t *req, const char *text)
{
    int ok = loom__hresp_writable(req);
    if (ok <= 0)
        return ok;
    size_t tl = text ? strlen(text) : 0;
    for (size_t i = 0; i < tl; i++)
        if (text[i] == '\r' || text[i] == '\n')
            return LOOM_EINVAL;
    const char *parts[3] = {": ", text ? text : "", "\n\n"};
    size_t lens[3] = {2, tl, 2};
    return loom__sse_emit(req, parts, lens, 3, tl + 4);
}
