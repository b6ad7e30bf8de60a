/* loom-chat: loom's demo, a long-poll chat room (what `make run` starts).
 *
 *     loom-chat [--port P] [--bind ADDR] [--poll-timeout MS] [--verbose]
 *               [--tls-cert FILE --tls-key FILE]
 *
 * Plain HTTP by default (`make run`); with --tls-cert and --tls-key (PEM:
 * the chain, leaf first, and its key) it serves HTTPS instead, and browsers
 * then load the page, poll and post over HTTP/2 (ALPN h2, one connection
 * multiplexing every request, held polls included); the WebSocket has its
 * own HTTP/1.1 connection (loom offers no RFC 8441 extended CONNECT).
 * --verbose logs each request with its protocol ("HTTP/2 stream 5").
 *
 * Open http://127.0.0.1:8080/ in two browser windows and talk. The page
 * (examples/chat/: HTML, CSS, JS) is built into the binary. The protocol:
 *
 *   GET  /api/messages?since=ID[&boot=B]
 *        The messages after ID as {"boot", "last", "closing", "messages":
 *        [{"id", "time", "name", "text"}, ...]}. When there is nothing newer
 *        the request is held open (a deferred answer) until a message
 *        arrives, or answered empty after the poll timeout (25 s) so that
 *        the client asks again before proxies give up on it. Without
 *        `since`, or with a `boot` other than this server's (it restarted),
 *        the whole history comes back at once.
 *   POST /api/messages  (application/x-www-form-urlencoded: name, text)
 *        Adds a message and answers every held poll. 201 {"id": N}.
 *   GET  /api/ws?since=ID[&boot=B]  (a WebSocket upgrade)
 *        The same over one WebSocket: the server sends, as text messages,
 *        the answer a poll would get at once (the history after ID), then
 *        one {"boot", "last", "closing", "messages": [m]} per new message,
 *        and {"stats": {...}} every second. The client sends a message as a
 *        text message holding the POST's form body ("name=..&text=..") and
 *        gets {"sent": N} or {"error": "..."} back. A closing server sends
 *        "closing": true and closes with 1001.
 *   GET  /api/stats
 *        {"stats": {...}}: connections by transport, messages per second and
 *        memory (the live panel of a long-polling page asks every 2 s).
 *
 * The history is bounded: the last CHAT_HISTORY messages, in a ring indexed
 * by id. A client that goes away while its poll is held is reported through
 * the server's on_close callback; the poll is then dropped (its timer
 * closed, the request released). SIGINT or SIGTERM closes the server
 * gracefully: held polls are answered at once with "closing": true,
 * WebSocket clients get the same and a close frame, the server waits for
 * them to go out and closes its connections, and the loop then ends because
 * nothing is left; a second signal forces the close.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "chat_assets.h" /* generated from examples/chat/ by chat/embed.cmake */
#include "example_tls.h"
#include "loom.h"

enum {
    CHAT_HISTORY = 100,               /* messages kept */
    CHAT_NAME_MAX = 64,               /* bytes of UTF-8 */
    CHAT_TEXT_MAX = 2000,             /* bytes of UTF-8 */
    CHAT_BODY_MAX = 16 * 1024,        /* a POST body */
    CHAT_POLL_TIMEOUT_MS = 25 * 1000, /* an empty answer after this */
    CHAT_STATS_MS = 1000              /* the live panel's period */
};

/* --- A growable string ---------------------------------------------------------
 * Errors are sticky: appends after a failed allocation do nothing and the
 * caller checks `failed` once, at the end. */

typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} strbuf_t;

static void sb_add(strbuf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(strbuf_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_addf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_addf(strbuf_t *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    /* Only used for numbers, which always fit. */
    if (n < 0 || (size_t)n >= sizeof tmp)
        b->failed = true;
    else
        sb_add(b, tmp, (size_t)n);
}

/* Appends s[0..n) as a JSON string. The input is valid UTF-8 (checked when
 * the message came in), so only quotes, backslashes and control characters
 * need escaping. */
static void sb_add_json_string(strbuf_t *b, const char *s, size_t n)
{
    sb_add(b, "\"", 1);
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        sb_add(b, s + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            snprintf(esc, sizeof esc, "\\n");
        else
            snprintf(esc, sizeof esc, "\\u%04x", c);
        sb_adds(b, esc);
    }
    sb_add(b, s + run, n - run);
    sb_add(b, "\"", 1);
}

static void sb_free(strbuf_t *b)
{
    free(b->p);
    *b = (strbuf_t){0};
}

/* --- The chat room ----------------------------------------------------------- */

typedef struct chat chat_t;

/* A held poll. Linked in chat->waiters (a circular list with a sentinel, so
 * a waiter unlinks itself from whatever list holds it); it is the request's
 * data slot while held. */
typedef struct waiter {
    struct waiter *prev, *next;
    chat_t *chat;
    loom_http_req_t *req;
    loom_timer_t *timer; /* the poll timeout */
    uint64_t since;
} waiter_t;

/* A WebSocket client: its connection's data slot, linked in chat->sockets. */
typedef struct wsclient {
    struct wsclient *prev, *next;
    chat_t *chat;
    loom_ws_t *ws;
} wsclient_t;

struct chat {
    loom_loop_t *loop;
    loom_http_server_t *srv; /* NULL once fully closed */
    loom_signal_t *sigint, *sigterm;
    /* The last CHAT_HISTORY messages, pre-rendered as JSON objects; message
     * `id` lives in history[(id - 1) % CHAT_HISTORY]. Ids start at 1. */
    struct {
        char *json;
        size_t len;
    } history[CHAT_HISTORY];
    uint64_t last_id;
    int64_t boot; /* start time in ms: tells clients about restarts */
    waiter_t waiters;
    size_t nwaiters;
    /* WebSocket clients: every one is also subscribed to topic "chat". */
    wsclient_t sockets;
    size_t nsockets;
    loom_ws_topics_t *topics;
    /* The live panel: counted since the last tick, rendered once a second. */
    loom_timer_t *stats_timer;
    uint64_t posted, delivered, bytes_read, bytes_written;
    int64_t stats_at;
    strbuf_t stats_json;
    uint32_t poll_timeout_ms;
    bool closing;
    bool verbose;
    /* ETags of the assets, "\"<fnv-1a 64 hex>\"". */
    char etags[sizeof chat_assets / sizeof chat_assets[0]][20];
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t oldest_id(const chat_t *c)
{
    return c->last_id > CHAT_HISTORY ? c->last_id - CHAT_HISTORY + 1 : 1;
}

/* {"boot":B,"last":L,"closing":false,"messages":[...the messages after since...]} */
static void render_messages(const chat_t *c, uint64_t since, strbuf_t *b)
{
    sb_addf(b, "{\"boot\":%" PRId64 ",\"last\":%" PRIu64 ",\"closing\":%s,\"messages\":[", c->boot,
            c->last_id, c->closing ? "true" : "false");
    uint64_t first = since + 1 > oldest_id(c) ? since + 1 : oldest_id(c);
    for (uint64_t id = first; id <= c->last_id; id++) {
        if (id != first)
            sb_add(b, ",", 1);
        const char *json = c->history[(id - 1) % CHAT_HISTORY].json;
        sb_add(b, json, c->history[(id - 1) % CHAT_HISTORY].len);
    }
    sb_adds(b, "]}");
}

/* "HTTP/1.1", or "HTTP/2 stream N", for the access log. */
static const char *req_protocol(const loom_http_req_t *req, char *buf, size_t size)
{
    int v = loom_http_req_version(req);
    if (v >= 20)
        snprintf(buf, size, "HTTP/2 stream %" PRIu32, loom_http_req_stream_id(req));
    else
        snprintf(buf, size, "HTTP/%d.%d", v / 10, v % 10);
    return buf;
}

/* Every answer goes through here, for the access log. The request is dead
 * afterwards (loom_http_respond() answers it whatever it returns, barring
 * LOOM_EINVAL, which our fixed headers never cause). */
static void answer(chat_t *c, loom_http_req_t *req, int status, const char *const *headers,
                   const void *body, size_t len)
{
    if (c->verbose) {
        const char *method = loom_http_req_method_str(req, NULL);
        const char *target = loom_http_req_target(req, NULL);
        char proto[32];
        fprintf(stderr, "loom-chat: %s %s %s -> %d\n", method, target,
                req_protocol(req, proto, sizeof proto), status);
    }
    int r = loom_http_respond(req, status, headers, body, len);
    if (r < 0 && c->verbose)
        fprintf(stderr, "loom-chat: answer dropped: %s\n", loom_strerror(r));
}

static const char *const json_headers[] = {"Content-Type", "application/json; charset=utf-8",
                                           "Cache-Control", "no-store", NULL};

static void answer_json(chat_t *c, loom_http_req_t *req, int status, const strbuf_t *b)
{
    if (b->failed) {
        static const char oom[] = "{\"error\":\"out of memory\"}";
        answer(c, req, 500, json_headers, oom, sizeof oom - 1);
        return;
    }
    answer(c, req, status, json_headers, b->p, b->len);
}

static void answer_error(chat_t *c, loom_http_req_t *req, int status, const char *why)
{
    strbuf_t b = {0};
    sb_adds(&b, "{\"error\":");
    sb_add_json_string(&b, why, strlen(why));
    sb_adds(&b, "}");
    answer_json(c, req, status, &b);
    sb_free(&b);
}

/* --- Held polls ------------------------------------------------------------------ */

static void waiter_link(waiter_t *head, waiter_t *w)
{
    w->prev = head->prev;
    w->next = head;
    head->prev->next = w;
    head->prev = w;
}

static void waiter_unlink(waiter_t *w)
{
    w->prev->next = w->next;
    w->next->prev = w->prev;
    w->prev = w->next = w;
}

/* Forgets a held poll; its request is then the caller's to answer or
 * release. */
static void waiter_free(waiter_t *w)
{
    waiter_unlink(w);
    w->chat->nwaiters--;
    loom_http_req_set_data(w->req, NULL);
    loom_timer_close(w->timer); /* harmless from the timer's own callback */
    free(w);
}

static void on_poll_timeout(loom_timer_t *timer, void *data)
{
    waiter_t *w = data;
    chat_t *c = w->chat;
    loom_http_req_t *req = w->req;
    uint64_t since = w->since;
    waiter_free(w);
    strbuf_t b = {0};
    render_messages(c, since, &b); /* no messages: the client simply asks again */
    answer_json(c, req, 200, &b);
    sb_free(&b);
}

/* Holds `req` until a message after `since` arrives or the poll times out.
 * Returns 0, or LOOM_ENOMEM (the request is then still the caller's). */
static int waiter_add(chat_t *c, loom_http_req_t *req, uint64_t since)
{
    waiter_t *w = calloc(1, sizeof *w);
    if (!w)
        return LOOM_ENOMEM;
    int r = loom_timer_new(c->loop, &w->timer, on_poll_timeout, w);
    if (r < 0)
        goto fail_timer;
    r = loom_timer_start(w->timer, c->poll_timeout_ms, 0);
    if (r < 0)
        goto fail_start;
    w->chat = c;
    w->req = req;
    w->since = since;
    waiter_link(&c->waiters, w);
    c->nwaiters++;
    loom_http_req_set_data(req, w);
    return 0;
fail_start:
    loom_timer_close(w->timer);
fail_timer:
    free(w);
    return r;
}

/* Answers every held poll: after a new message, and when closing. The list
 * is detached first, so that a poll arriving while we answer (loom may parse
 * a pipelined request as soon as the previous one is answered) waits for the
 * next message instead of being answered empty. Waiters are taken one at a
 * time from the head, so a waiter freed meanwhile (its client went away)
 * is simply no longer there. */
static void waiters_answer_all(chat_t *c)
{
    if (c->waiters.next == &c->waiters)
        return;
    waiter_t batch;
    batch.next = c->waiters.next;
    batch.prev = c->waiters.prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    c->waiters.next = c->waiters.prev = &c->waiters;

    /* Held polls almost always share the same `since` (the previous last
     * id): render the answer once per distinct value. */
    strbuf_t b = {0};
    uint64_t rendered_since = UINT64_MAX;
    while (batch.next != &batch) {
        waiter_t *w = batch.next;
        loom_http_req_t *req = w->req;
        uint64_t since = w->since;
        waiter_free(w);
        if (since != rendered_since) {
            b.len = 0;
            b.failed = false;
            render_messages(c, since, &b);
            rendered_since = since;
        }
        answer_json(c, req, 200, &b);
    }
    sb_free(&b);
}

/* --- Requests ------------------------------------------------------------------- */

/* Reads ?since=ID&boot=B: *since is 0 when the client must get the whole
 * history (no since, another boot, an id never given out). Returns false
 * after answering 400 for a bad `since`. */
static bool poll_since(chat_t *c, loom_http_req_t *req, uint64_t *since_out, bool *reset_out)
{
    char num[32];
    uint64_t since = 0;
    bool reset = false;
    int n = loom_http_req_query_param(req, "since", num, sizeof num);
    if (n == LOOM_ENOENT) {
        reset = true;
    } else {
        char *end;
        if (n <= 0 || num[0] < '0' || num[0] > '9' ||
            (since = strtoull(num, &end, 10), *end != '\0')) {
            answer_error(c, req, 400, "since must be a message id");
            return false;
        }
    }
    if (loom_http_req_query_param(req, "boot", num, sizeof num) > 0 &&
        strtoll(num, NULL, 10) != c->boot)
        reset = true;
    /* Ids from a previous run of the server, or from nowhere. */
    if (since > c->last_id)
        reset = true;
    *since_out = reset ? 0 : since;
    *reset_out = reset;
    return true;
}

static void handle_poll(chat_t *c, loom_http_req_t *req, bool may_wait)
{
    uint64_t since;
    bool reset;
    if (!poll_since(c, req, &since, &reset))
        return;

    if (since < c->last_id || reset || c->closing || !may_wait) {
        strbuf_t b = {0};
        render_messages(c, since, &b);
        answer_json(c, req, 200, &b);
        sb_free(&b);
        return;
    }
    if (waiter_add(c, req, since) < 0) {
        answer_error(c, req, 503, "out of memory");
        return;
    }
    if (c->verbose) {
        char proto[32];
        fprintf(stderr, "loom-chat: %s %s: held on %s (%zu waiting)\n",
                loom_http_req_method_str(req, NULL), loom_http_req_target(req, NULL),
                req_protocol(req, proto, sizeof proto), c->nwaiters);
    }
}

/* Returns true if s[0..n) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* Decodes form field `name` of the body into buf[0..size), turns control
 * characters into spaces and trims spaces at both ends. Returns the length,
 * or -1 with *why set to the reason. */
static int form_field(const char *body, size_t blen, const char *name, char *buf, size_t size,
                      const char **why)
{
    int n = loom_url_query_get(body, blen, name, buf, size);
    if (n == LOOM_ENOENT) {
        *why = "missing field";
        return -1;
    }
    if (n == LOOM_ENOSPC) {
        *why = "too long";
        return -1;
    }
    if (n < 0) {
        *why = "bad encoding";
        return -1;
    }
    if (!utf8_valid((const unsigned char *)buf, (size_t)n)) {
        *why = "not UTF-8";
        return -1;
    }
    for (int i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7F)
            buf[i] = ' ';
    int start = 0;
    while (start < n && buf[start] == ' ')
        start++;
    while (n > start && buf[n - 1] == ' ')
        n--;
    memmove(buf, buf + start, (size_t)(n - start));
    n -= start;
    buf[n] = '\0';
    if (n == 0) {
        *why = "empty";
        return -1;
    }
    return n;
}

static void notify_all(chat_t *c, uint64_t id);

/* Adds a message from a form body (name, text). Returns 0 with its id in
 * *id, or an HTTP status (400, 503) with the reason in why[0..64). */
static int add_message(chat_t *c, const char *body, size_t blen, uint64_t *id, char why[64])
{
    char name[CHAT_NAME_MAX + 1], text[CHAT_TEXT_MAX + 1];
    const char *err;
    if (c->closing) {
        snprintf(why, 64, "the server is shutting down");
        return 503;
    }
    int nlen = form_field(body ? body : "", blen, "name", name, sizeof name, &err);
    if (nlen < 0) {
        snprintf(why, 64, "name: %s", err);
        return 400;
    }
    int tlen = form_field(body ? body : "", blen, "text", text, sizeof text, &err);
    if (tlen < 0) {
        snprintf(why, 64, "text: %s", err);
        return 400;
    }

    *id = c->last_id + 1;
    strbuf_t m = {0};
    sb_addf(&m, "{\"id\":%" PRIu64 ",\"time\":%" PRId64 ",\"name\":", *id, wall_ms());
    sb_add_json_string(&m, name, (size_t)nlen);
    sb_adds(&m, ",\"text\":");
    sb_add_json_string(&m, text, (size_t)tlen);
    sb_adds(&m, "}");
    if (m.failed) {
        sb_free(&m);
        snprintf(why, 64, "out of memory");
        return 503;
    }
    /* The slot's previous message (id - CHAT_HISTORY) falls out of the
     * history. */
    size_t slot = (*id - 1) % CHAT_HISTORY;
    free(c->history[slot].json);
    c->history[slot].json = m.p;
    c->history[slot].len = m.len;
    c->last_id = *id;
    c->posted++;
    return 0;
}

static void handle_post(chat_t *c, loom_http_req_t *req)
{
    if (c->closing) {
        answer_error(c, req, 503, "the server is shutting down");
        return;
    }
    const char *ctype = loom_http_req_header(req, "Content-Type", NULL);
    static const char form[] = "application/x-www-form-urlencoded";
    if (!ctype || strncasecmp(ctype, form, sizeof form - 1) != 0) {
        answer_error(c, req, 415, "send application/x-www-form-urlencoded");
        return;
    }
    size_t blen;
    const char *body = loom_http_req_body(req, &blen);
    char why[64];
    uint64_t id;
    int status = add_message(c, body, blen, &id, why);
    if (status != 0) {
        answer_error(c, req, status, why);
        return;
    }
    strbuf_t b = {0};
    sb_addf(&b, "{\"id\":%" PRIu64 "}", id);
    answer_json(c, req, 201, &b);
    sb_free(&b);
    notify_all(c, id);
}

/* --- WebSocket clients ---------------------------------------------------------- */

static void ws_send_json(wsclient_t *w, const strbuf_t *b)
{
    if (!b->failed)
        loom_ws_send(w->ws, LOOM_WS_TEXT, b->p, b->len);
}

/* A new message reaches every held poll and every WebSocket client (one
 * frame for all of them: a topic publish). */
static void notify_all(chat_t *c, uint64_t id)
{
    c->delivered += c->nwaiters;
    waiters_answer_all(c);
    if (c->nsockets == 0)
        return;
    strbuf_t b = {0};
    render_messages(c, id - 1, &b);
    if (!b.failed) {
        int n = loom_ws_publish(c->topics, "chat", LOOM_WS_TEXT, b.p, b.len);
        if (n > 0)
            c->delivered += (uint64_t)n;
    }
    sb_free(&b);
}

static void on_ws_message(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len,
                          void *data)
{
    wsclient_t *w = data;
    chat_t *c = w->chat;
    strbuf_t b = {0};
    char why[64];
    uint64_t id = 0;
    int status = type == LOOM_WS_TEXT ? add_message(c, msg, len, &id, why) : 400;
    if (type != LOOM_WS_TEXT)
        snprintf(why, sizeof why, "send text messages");
    if (status == 0) {
        sb_addf(&b, "{\"sent\":%" PRIu64 "}", id);
    } else {
        sb_adds(&b, "{\"error\":");
        sb_add_json_string(&b, why, strlen(why));
        sb_adds(&b, "}");
    }
    ws_send_json(w, &b);
    sb_free(&b);
    if (c->verbose)
        fprintf(stderr, "loom-chat: websocket message -> %s\n", status == 0 ? "sent" : why);
    (void)ws;
    if (status == 0)
        notify_all(c, id);
}

static void on_ws_close(loom_ws_t *ws, int code, const char *reason, size_t reason_len, void *data)
{
    wsclient_t *w = data;
    chat_t *c = w->chat;
    (void)ws;
    (void)reason_len;
    w->prev->next = w->next;
    w->next->prev = w->prev;
    c->nsockets--;
    if (c->verbose)
        fprintf(stderr, "loom-chat: websocket closed (%d%s%s), %zu open\n", code,
                reason[0] ? " " : "", reason, c->nsockets);
    free(w);
}

static void on_ws_event(const loom_event_t *ev, void *data)
{
    wsclient_t *w = data;
    if (w->chat->verbose)
        fprintf(stderr, "loom-chat: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static const loom_ws_opts chat_ws_opts = {
    .on_message = on_ws_message,
    .on_close = on_ws_close,
    .on_event = on_ws_event,
    .max_message = CHAT_BODY_MAX,
    .ping_interval_ms = 30 * 1000, /* a dead peer is noticed within a minute */
    .deflate = true,               /* browsers offer permessage-deflate */
};

/* GET /api/ws: the upgrade, then the history after `since` at once. */
static void handle_ws(chat_t *c, loom_http_req_t *req)
{
    uint64_t since;
    bool reset;
    if (!poll_since(c, req, &since, &reset))
        return;
    if (c->closing) {
        answer_error(c, req, 503, "the server is shutting down");
        return;
    }
    wsclient_t *w = calloc(1, sizeof *w);
    if (!w) {
        answer_error(c, req, 503, "out of memory");
        return;
    }
    w->chat = c;
    char proto[32];
    req_protocol(req, proto, sizeof proto); /* for the log: req is gone after the accept */
    loom_ws_opts o = chat_ws_opts;
    o.data = w;
    /* Linked first: the connection's callbacks may run as soon as it exists. */
    w->prev = c->sockets.prev;
    w->next = &c->sockets;
    c->sockets.prev->next = w;
    c->sockets.prev = w;
    c->nsockets++;
    if (loom_ws_accept(req, &o, &w->ws) < 0) { /* a bad handshake is answered by loom */
        w->prev->next = w->next;
        w->next->prev = w->prev;
        c->nsockets--;
        free(w);
        return;
    }
    if (c->verbose)
        fprintf(stderr, "loom-chat: websocket open (%s), %zu open\n", proto, c->nsockets);
    if (loom_ws_subscribe(c->topics, w->ws, "chat") < 0) {
        loom_ws_close(w->ws, LOOM_WS_INTERNAL, "out of memory");
        return;
    }
    strbuf_t b = {0};
    render_messages(c, since, &b);
    ws_send_json(w, &b);
    sb_free(&b);
    if (c->stats_json.len)
        ws_send_json(w, &c->stats_json);
}

/* --- The live panel ----------------------------------------------------------- */

static uint64_t rss_bytes(void)
{
    unsigned long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Renders {"stats": {...}} from loom_stats() and the chat's counters, and
 * pushes it to every WebSocket client. */
static void on_stats_tick(loom_timer_t *timer, void *data)
{
    chat_t *c = data;
    (void)timer;
    loom_stats_t st;
    loom_stats(c->loop, &st);
    int64_t now = wall_ms();
    double secs = c->stats_at ? (double)(now - c->stats_at) / 1000.0 : 0;
    if (secs <= 0)
        secs = 1;
    strbuf_t *b = &c->stats_json;
    b->len = 0;
    b->failed = false;
    sb_addf(b, "{\"stats\":{\"websocket\":%zu,\"long_poll\":%zu", c->nsockets, c->nwaiters);
    sb_addf(b, ",\"tcp\":%" PRIu64 ",\"accepted\":%" PRIu64, st.tcp_incoming,
            st.tcp_incoming_total);
    sb_addf(b, ",\"posted_per_s\":%.1f", (double)c->posted / secs);
    sb_addf(b, ",\"delivered_per_s\":%.1f", (double)c->delivered / secs);
    sb_addf(b, ",\"read_per_s\":%.0f",
            (double)(st.bytes_read - (c->stats_at ? c->bytes_read : st.bytes_read)) / secs);
    sb_addf(b, ",\"written_per_s\":%.0f",
            (double)(st.bytes_written - (c->stats_at ? c->bytes_written : st.bytes_written)) /
                secs);
    sb_addf(b, ",\"rss\":%" PRIu64 ",\"lag_max_us\":%" PRIu64 ",\"messages\":%" PRIu64 "}}",
            rss_bytes(), st.lag_max_ns / 1000, c->last_id);
    c->posted = c->delivered = 0;
    c->bytes_read = st.bytes_read;
    c->bytes_written = st.bytes_written;
    c->stats_at = now;
    if (c->nsockets && !b->failed)
        loom_ws_publish(c->topics, "chat", LOOM_WS_TEXT, b->p, b->len);
}

static void handle_stats(chat_t *c, loom_http_req_t *req)
{
    if (!c->stats_json.len || c->stats_json.failed) {
        answer_error(c, req, 503, "no figures yet");
        return;
    }
    answer_json(c, req, 200, &c->stats_json);
}

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    if (dot && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    return "application/octet-stream";
}

static void handle_asset(chat_t *c, loom_http_req_t *req, size_t i)
{
    const chat_asset_t *a = &chat_assets[i];
    /* no-cache: the browser revalidates every time, and gets a 304 while the
     * ETag matches, so a rebuilt server never serves a stale page. */
    const char *headers[] = {"Content-Type",
                             content_type(a->path),
                             "Cache-Control",
                             "no-cache",
                             "ETag",
                             c->etags[i],
                             "X-Content-Type-Options",
                             "nosniff",
                             "Content-Security-Policy",
                             "default-src 'self'",
                             NULL};
    const char *inm = loom_http_req_header(req, "If-None-Match", NULL);
    if (inm && strstr(inm, c->etags[i]))
        answer(c, req, 304, headers, NULL, 0);
    else
        answer(c, req, 200, headers, a->data, a->len);
}

static bool path_is(const char *path, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(path, want, len) == 0;
}

static void on_request(loom_http_req_t *req, void *data)
{
    chat_t *c = data;
    size_t plen;
    const char *path = loom_http_req_path(req, &plen);
    loom_http_method_t method = loom_http_req_method(req);
    bool get = method == LOOM_HTTP_METHOD_GET, head = method == LOOM_HTTP_METHOD_HEAD;

    if (path_is(path, plen, "/api/messages")) {
        if (get || head)
            handle_poll(c, req, get);
        else if (method == LOOM_HTTP_METHOD_POST)
            handle_post(c, req);
        else
            answer(c, req, 405, (const char *[]){"Allow", "GET, HEAD, POST", NULL}, NULL, 0);
        return;
    }
    if (path_is(path, plen, "/api/ws")) {
        if (get)
            handle_ws(c, req);
        else
            answer(c, req, 405, (const char *[]){"Allow", "GET", NULL}, NULL, 0);
        return;
    }
    if (path_is(path, plen, "/api/stats")) {
        if (get || head)
            handle_stats(c, req);
        else
            answer(c, req, 405, (const char *[]){"Allow", "GET, HEAD", NULL}, NULL, 0);
        return;
    }
    if (path_is(path, plen, "/"))
        path = "/index.html", plen = strlen(path);
    for (size_t i = 0; i < sizeof chat_assets / sizeof chat_assets[0]; i++) {
        if (!path_is(path, plen, chat_assets[i].path))
            continue;
        if (get || head)
            handle_asset(c, req, i);
        else
            answer(c, req, 405, (const char *[]){"Allow", "GET, HEAD", NULL}, NULL, 0);
        return;
    }
    static const char nf[] = "not found\n";
    answer(c, req, 404, (const char *[]){"Content-Type", "text/plain; charset=utf-8", NULL}, nf,
           sizeof nf - 1);
}

/* The client of a held poll went away: drop the poll. */
static void on_client_gone(loom_http_req_t *req, void *data)
{
    chat_t *c = data;
    waiter_t *w = loom_http_req_data(req);
    if (w)
        waiter_free(w);
    if (c->verbose) {
        char proto[32];
        fprintf(stderr, "loom-chat: %s %s: client went away (%s)\n",
                loom_http_req_method_str(req, NULL), loom_http_req_target(req, NULL),
                req_protocol(req, proto, sizeof proto));
    }
    loom_http_req_release(req);
}

static void on_http_event(const loom_event_t *ev, void *data)
{
    chat_t *c = data;
    /* Bad requests, timeouts and accept errors are answered or handled by
     * loom; they are only worth a line when asked for. */
    if (c->verbose)
        fprintf(stderr, "loom-chat: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

/* --- Closing ------------------------------------------------------------------- */

static void on_server_closed(loom_http_server_t *srv, void *data)
{
    chat_t *c = data;
    if (!c->srv)
        return;
    c->srv = NULL;
    /* The handlers are all that is left; without them the loop ends. */
    loom_signal_free(c->sigint);
    loom_signal_free(c->sigterm);
    c->sigint = c->sigterm = NULL;
    fprintf(stderr, "loom-chat: closed\n");
}

/* Every WebSocket client gets "closing": true and a close frame (1001); with
 * `force`, its connection is dropped at once instead. */
static void sockets_close_all(chat_t *c, bool force)
{
    strbuf_t b = {0};
    render_messages(c, c->last_id, &b);
    for (wsclient_t *w = c->sockets.next, *next; w != &c->sockets; w = next) {
        next = w->next; /* w may be freed by its on_close, which runs later */
        if (force) {
            loom_ws_abort(w->ws);
        } else {
            ws_send_json(w, &b);
            loom_ws_close(w->ws, LOOM_WS_GOING_AWAY, "server stopped");
        }
    }
    sb_free(&b);
}

static void on_signal(loom_signal_t *sig, int signo, void *data)
{
    chat_t *c = data;
    if (!c->srv)
        return;
    if (c->closing) {
        fprintf(stderr, "loom-chat: closing every connection now\n");
        sockets_close_all(c, true);
        loom_http_server_close(c->srv, LOOM_HTTP_CLOSE_FORCE, on_server_closed);
        return;
    }
    fprintf(stderr,
            "loom-chat: closing, answering %zu held poll%s and closing %zu websocket%s "
            "(signal again to force)\n",
            c->nwaiters, c->nwaiters == 1 ? "" : "s", c->nsockets, c->nsockets == 1 ? "" : "s");
    c->closing = true;
    loom_timer_close(c->stats_timer);
    c->stats_timer = NULL;
    sockets_close_all(c, false);
    /* Close first, so that the answers below carry "Connection: close". */
    loom_http_server_close(c->srv, 0, on_server_closed);
    waiters_answer_all(c);
}

/* --- main --------------------------------------------------------------------- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    return h;
}

static void usage(void)
{
    fprintf(stderr, "usage: loom-chat [--port P] [--bind ADDR] [--poll-timeout MS] [--verbose]\n"
                    "  --port P          port to listen on (default 8080; 0 picks a free one)\n"
                    "  --bind ADDR       address to listen on (default 127.0.0.1; '*' for all)\n"
                    "  --poll-timeout MS how long a poll is held (default 25000)\n"
                    "  --verbose         log every request to stderr\n"
                    "  --tls-cert FILE   serve HTTPS with this certificate chain (PEM)\n"
                    "  --tls-key FILE    ... and this private key (PEM)\n");
    exit(2);
}

static long parse_num(const char *s, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > max)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    static chat_t chat; /* zeroed; too big for some stacks */
    chat_t *c = &chat;
    const char *bind = "127.0.0.1", *cert = NULL, *key = NULL;
    int port = 8080;
    c->poll_timeout_ms = CHAT_POLL_TIMEOUT_MS;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (int)parse_num(argv[++i], 0, 65535);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--poll-timeout") == 0 && i + 1 < argc)
            c->poll_timeout_ms = (uint32_t)parse_num(argv[++i], 1, 3600 * 1000);
        else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0)
            c->verbose = true;
        else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            key = argv[++i];
        else
            usage();
    }
    loom_tls_ctx_t *tls = example_tls_server("loom-chat", cert, key);
    if (strcmp(bind, "*") == 0)
        bind = NULL;

    c->boot = wall_ms();
    c->waiters.next = c->waiters.prev = &c->waiters;
    c->sockets.next = c->sockets.prev = &c->sockets;
    for (size_t i = 0; i < sizeof chat_assets / sizeof chat_assets[0]; i++)
        snprintf(c->etags[i], sizeof c->etags[i], "\"%016" PRIx64 "\"",
                 fnv1a(chat_assets[i].data, chat_assets[i].len));

    int r = loom_loop_new(&c->loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-chat: %s\n", loom_strerror(r));
        loom_tls_ctx_free(tls);
        return 1;
    }
    loom_http_server_opts opts = {
        .data = c,
        .on_event = on_http_event,
        .on_close = on_client_gone,
        .limits = {.max_body_size = CHAT_BODY_MAX},
        .server_name = "loom-chat",
        .tls = tls,
    };
    r = loom_http_server(c->loop, bind, port, on_request, &opts, &c->srv);
    loom_tls_ctx_free(tls); /* the server holds its own reference */
    if (r < 0) {
        fprintf(stderr, "loom-chat: cannot listen on %s port %d: %s\n", bind ? bind : "*", port,
                loom_strerror(r));
        goto fail_server;
    }
    r = loom_ws_topics_new(c->loop, &(loom_ws_topics_opts){.slow = LOOM_WS_SLOW_SKIP}, &c->topics);
    if (r == 0)
        r = loom_timer_new(c->loop, &c->stats_timer, on_stats_tick, c);
    if (r == 0)
        r = loom_timer_start(c->stats_timer, 0, CHAT_STATS_MS);
    if (r == 0)
        r = loom_signal_handler(c->loop, SIGINT, on_signal, c, &c->sigint);
    if (r == 0)
        r = loom_signal_handler(c->loop, SIGTERM, on_signal, c, &c->sigterm);
    if (r < 0) {
        fprintf(stderr, "loom-chat: signal handler: %s\n", loom_strerror(r));
        goto fail_signal;
    }

    const char *host = bind ? bind : "127.0.0.1";
    bool v6 = strchr(host, ':') != NULL;
    printf("loom-chat: listening on %s://%s%s%s:%d/ (%s)\n", tls ? "https" : "http", v6 ? "[" : "",
           host, v6 ? "]" : "", loom_http_server_port(c->srv), loom_loop_backend(c->loop));
    fflush(stdout);

    r = loom_run(c->loop, LOOM_RUN_DEFAULT);
    if (r < 0)
        fprintf(stderr, "loom-chat: %s\n", loom_strerror(r));
    for (size_t i = 0; i < CHAT_HISTORY; i++)
        free(c->history[i].json);
    loom_ws_topics_free(c->topics);
    loom_loop_free(c->loop);
    sb_free(&c->stats_json);
    return r < 0 ? 1 : 0;

fail_signal:
    loom_signal_clear(c->loop);
    if (c->stats_timer)
        loom_timer_close(c->stats_timer);
    loom_http_server_close(c->srv, LOOM_HTTP_CLOSE_FORCE, NULL);
fail_server:
    loom_ws_topics_free(c->topics);
    loom_loop_free(c->loop);
    return 1;
}
