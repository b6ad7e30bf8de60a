/* http/server_resp.c - answers, protocol-neutral: the checks and rules of
 * whole (loom_http_respond), streamed, interim (1xx) and Server-Sent Events
 * answers, and the scan of the application's fields; the status reasons,
 * the status line and the Date cache shared with the client.
 *
 * The rules live here: which status is allowed where, no body for HEAD,
 * 204 and 304, the Content-Length of a HEAD or 304 answer, an announced
 * length that a streamed body may not exceed, and the SSE event text. The
 * bytes are written by the request's protocol (req->proto: server_h1.c),
 * which frames them (a head, chunks) and batches them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/server_internal.h"

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
const char *loom__hsrv_date(loom__hsrv_loop *sl)
{
    uint64_t now = sl->loop->now;
    if (LOOM__UNLIKELY(now >= sl->date_next)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        memcpy(sl->date, "Date: ", 6);
        loom_http_date((int64_t)ts.tv_sec, sl->date + 6);
        memcpy(sl->date + 35, "\r\n", 3);
        sl->date_next = now + 1000 - (uint64_t)(ts.tv_nsec / 1000000);
    }
    return sl->date;
}

const char *loom__http_date_now(loom_loop_t *loop)
{
    loom__hsrv_loop *sl = loom__hsrv_loop_get(loop);
    return sl ? loom__hsrv_date(sl) : NULL;
}

/* --- Answer fields ------------------------------------------------------------------- */

int loom__hdr_kind(const char *name, size_t nl)
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
    sc->upgrade = false;
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
            /* RFC 9110 section 7.8: a sender of Upgrade (a 426 must send
             * one) also sends the "upgrade" connection option. */
            if (nl == 7 && strncasecmp(name, "upgrade", 7) == 0)
                sc->upgrade = true;
            sc->len += nl + vl + 4;
            break;
        }
    }
    return 0;
}

static bool loom__status_nobody(int status)
{
    return status == 204 || status == 304;
}

/* A 2xx answer to CONNECT makes the connection a tunnel for the client: it
 * carries no Content-Length, Transfer-Encoding or body (RFC 9110 section
 * 9.3.6), whatever the application gave; the bytes after its head would be
 * tunnel data. (loom serves no tunnel: the connection ends after it.) */
static inline bool loom__tunnel_answer(const loom_http_req_t *req, int status)
{
    return req->rq.method == LOOM_HTTP_METHOD_CONNECT && status >= 200 && status < 300;
}

/* The request can still be answered on its connection. */
static inline bool loom__hreq_live(const loom_http_req_t *req)
{
    return req->sock != NULL && !(req->flags & LOOM__HR_GONE);
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
    if (!loom__hreq_live(req)) {
        req->proto->finished(req);
        return LOOM_ECLOSED;
    }
    bool head_req = req->rq.method == LOOM_HTTP_METHOD_HEAD;
    loom__hhead hd = {.status = status,
                      .hdrs = headers,
                      .sc = &sc,
                      .framing = LOOM__HF_LENGTH,
                      .length = len,
                      .body = body,
                      .len = head_req || loom__status_nobody(status) ? 0 : len};
    if (status == 204 || loom__tunnel_answer(req, status)) {
        hd.framing = LOOM__HF_NONE;
        hd.len = 0;
    } else if (len == 0 && sc.app_cl >= 0 && (head_req || status == 304))
        hd.length = (uint64_t)sc.app_cl;
    else if (status == 304)
        hd.framing = LOOM__HF_NONE;
    int r = req->proto->start(req, &hd);
    req->proto->finished(req);
    return r < 0 ? r : 0;
}

/* --- Interim answers ------------------------------------------------------------------ */

int loom_http_respond_interim(loom_http_req_t *req, int status, const char *const *headers)
{
    if (req == NULL || status < 100 || status > 199 || status == 101)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_NONE)
        return LOOM_ESTATE;
    loom__hscan sc;
    loom__hscan_init(&sc);
    if (loom__hdr_scan(headers, &sc) < 0)
        return LOOM_EINVAL;
    if (!loom__hreq_live(req))
        return LOOM_ECLOSED;
    return req->proto->interim(req, status, headers, &sc);
}

/* --- Takeover ------------------------------------------------------------------------ */

int loom_http_req_takeover(loom_http_req_t *req, int status, const char *const *headers,
                           const loom_tcp_opts *opts, loom_socket_t **out)
{
    if (req == NULL || opts == NULL || out == NULL || status != 101)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_NONE)
        return LOOM_ESTATE;
    /* A 101 answers an Upgrade request and names the protocol switched to
     * (RFC 9110 section 15.2.2). */
    if (loom_http_header_find(req->hdrs, req->nhdrs, "upgrade", NULL) == NULL)
        return LOOM_EINVAL;
    bool upgrade = false;
    for (size_t i = 0; headers && headers[i]; i += 2)
        if (strcasecmp(headers[i], "upgrade") == 0)
            upgrade = true;
    loom__hscan sc;
    loom__hscan_init(&sc);
    if (!upgrade || loom__hdr_scan(headers, &sc) < 0)
        return LOOM_EINVAL;
    if (!loom__hreq_live(req))
        return LOOM_ECLOSED;
    if (req->proto->takeover == NULL)
        return LOOM_ENOTSUP;
    loom__hhead hd = {.status = 101, .hdrs = headers, .sc = &sc, .framing = LOOM__HF_NONE};
    return req->proto->takeover(req, &hd, opts, out);
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
    if (!loom__hreq_live(req))
        return LOOM_ECLOSED;
    loom__hhead hd = {.status = status, .pre = pre, .hdrs = headers, .sc = &sc, .stream = true};
    req->out_left = UINT64_MAX;
    bool tunnel = loom__tunnel_answer(req, status);
    if (req->rq.method == LOOM_HTTP_METHOD_HEAD || loom__status_nobody(status) || tunnel)
        req->flags |= LOOM__HR_NOBODY;
    if (status == 204 || tunnel || (status == 304 && sc.app_cl < 0)) {
        hd.framing = LOOM__HF_NONE;
    } else if (sc.app_cl >= 0) {
        hd.framing = LOOM__HF_LENGTH;
        hd.length = (uint64_t)sc.app_cl;
        req->out_left = hd.length;
    } else {
        hd.framing = LOOM__HF_STREAM;
    }
    int r = req->proto->start(req, &hd);
    if (r == LOOM_ENOMEM)
        return r;
    req->astate = LOOM__HA_STREAM;
    return r < 0 ? r : 0;
}

int loom_http_response_start(loom_http_req_t *req, int status, const char *const *headers)
{
    return loom__hresp_start(req, status, NULL, headers);
}

/* Common checks of the streamed writers: 1 to go on, or a LOOM_E* code.
 * An answer that has no body (to HEAD, a 204 or 304, a 2xx to CONNECT)
 * refuses every write with LOOM_ENOBODY: nothing would ever reach the
 * socket, so a producer that writes until the call returns non-zero would
 * otherwise spin inside its callback making a body nobody gets. */
static int loom__hresp_writable(loom_http_req_t *req)
{
    if (req == NULL)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_STREAM)
        return (req->flags & LOOM__HR_GONE) ? LOOM_ECLOSED : LOOM_ESTATE;
    if (!loom__hreq_live(req))
        return LOOM_ECLOSED;
    if (req->flags & LOOM__HR_NOBODY)
        return LOOM_ENOBODY;
    return 1;
}

/* Counts `total` body bytes against an announced length. Returns 0 or
 * LOOM_ESTATE (more than announced). */
static int loom__hresp_take(loom_http_req_t *req, size_t total)
{
    if (req->out_left == UINT64_MAX)
        return 0; /* no length announced */
    if (total > req->out_left)
        return LOOM_ESTATE;
    req->out_left -= total;
    return 0;
}

int loom_http_response_write(loom_http_req_t *req, const void *data, size_t len)
{
    int ok = loom__hresp_writable(req);
    if (ok < 0)
        return ok;
    if (len == 0)
        return 0;
    if (data == NULL)
        return LOOM_EINVAL;
    if (loom__hresp_take(req, len) < 0)
        return LOOM_ESTATE;
    struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
    return req->proto->body(req, &iov, 1);
}

int loom_http_response_end(loom_http_req_t *req)
{
    if (req == NULL)
        return LOOM_EINVAL;
    if (req->astate != LOOM__HA_STREAM) {
        if (req->astate == LOOM__HA_NONE && (req->flags & LOOM__HR_GONE)) {
            req->proto->finished(req);
            return LOOM_ECLOSED;
        }
        return LOOM_ESTATE;
    }
    if (!loom__hreq_live(req)) {
        req->proto->finished(req);
        return LOOM_ECLOSED;
    }
    int r = 0;
    if (!(req->flags & LOOM__HR_NOBODY) && req->out_left != UINT64_MAX && req->out_left > 0)
        req->flags |= LOOM__HR_CLOSE; /* short body: only closing tells the client */
    else
        r = req->proto->end(req);
    req->proto->finished(req);
    return r < 0 ? r : 0;
}

/* --- Server-Sent Events ---------------------------------------------------------------- */

int loom_http_sse_start(loom_http_req_t *req, const char *const *headers)
{
    static const char *const pre[] = {"Content-Type", "text/event-stream", "Cache-Control",
                                      "no-cache", NULL};
    return loom__hresp_start(req, 200, pre, headers);
}

/* Sends an event's text, laid out as `n` pieces, through the answer's
 * framing, in one write. */
static int loom__sse_emit(loom_http_req_t *req, const char *const *parts, const size_t *lens, int n,
                          size_t total)
{
    if (loom__hresp_take(req, total) < 0)
        return LOOM_ESTATE;
    struct iovec iov[3];
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = (void *)parts[i];
        iov[i].iov_len = lens[i];
    }
    return req->proto->body(req, iov, n);
}

int loom_http_sse_send(loom_http_req_t *req, const char *event, const char *data)
{
    int ok = loom__hresp_writable(req);
    if (ok < 0)
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
    if (ok < 0)
        return ok;
    size_t tl = text ? strlen(text) : 0;
    for (size_t i = 0; i < tl; i++)
        if (text[i] == '\r' || text[i] == '\n')
            return LOOM_EINVAL;
    const char *parts[3] = {": ", text ? text : "", "\n\n"};
    size_t lens[3] = {2, tl, 2};
    return loom__sse_emit(req, parts, lens, 3, tl + 4);
}
