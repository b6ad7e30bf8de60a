/* tests/http/hc_test.h - helpers for the HTTP client tests: a scripted raw
 * TCP peer (plain sockets, a thread per connection) and a result recorder for
 * requests.
 *
 * The peer listens on 127.0.0.1 with an ephemeral port. Each accepted
 * connection runs the test's script fn(peer, fd, index) on its own thread;
 * the fd is closed when the script returns. hc_reader reads requests off a
 * connection with loom's own (pure) parser.
 */
#ifndef LOOM_HC_TEST_H
#define LOOM_HC_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "http_version.h"
#include "loom/http_client.h"
#include "test.h"

#define HC_PEER_MAX_CONNS 256

/* In the HTTP/2 run of a test (http_version.h) every request the test makes
 * asks for HTTP/2 with prior knowledge unless it chose a version itself:
 * the test's own loom_http_request() calls go through hc_request(). */
static inline int hc_request(loom_loop_t *loop, const char *url, const loom_http_request_opts *o,
                             loom_http_client_req_t **out)
{
    if (!hv_h2() || (o != NULL && o->version != LOOM_HTTP_VERSION_AUTO))
        return (loom_http_request)(loop, url, o, out);
    loom_http_request_opts c = o ? *o : (loom_http_request_opts){0};
    c.version = hv_client_version();
    return (loom_http_request)(loop, url, &c, out);
}
#define loom_http_request(...) hc_request(__VA_ARGS__)

typedef struct hc_peer hc_peer;
typedef void (*hc_peer_fn)(hc_peer *p, int fd, int index);

struct hc_peer {
    int lfd;
    int port;
    hc_peer_fn fn;
    void *arg;
    atomic_int stop;
    atomic_int accepted;
    pthread_t thr;
    pthread_t conn[HC_PEER_MAX_CONNS];
    int fds[HC_PEER_MAX_CONNS];
    int nconn;
    pthread_mutex_t lock;
    /* The HTTP/2 run (hc_h2_gateway.h): accepted counts h2c connections,
     * streams the script runs they made; scripts take indexes from nscripts. */
    atomic_int streams;
    int nscripts;
    uint32_t h2_max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS; 0: 100 */
};

typedef struct {
    hc_peer *p;
    int fd, index;
} hc_peer_job;

static void *hc_peer_conn_main(void *arg)
{
    hc_peer_job *j = arg;
    j->p->fn(j->p, j->fd, j->index);
    close(j->fd);
    free(j);
    return NULL;
}

static void hc_gw_main(hc_peer *p, int fd);

static void *hc_gw_conn_main(void *arg)
{
    hc_peer_job *j = arg;
    hc_gw_main(j->p, j->fd);
    close(j->fd);
    free(j);
    return NULL;
}

static void *hc_peer_main(void *arg)
{
    hc_peer *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pfd = {.fd = p->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&p->lock);
        if (p->nconn >= HC_PEER_MAX_CONNS) {
            pthread_mutex_unlock(&p->lock);
            close(fd);
            continue;
        }
        hc_peer_job *j = malloc(sizeof *j);
        CHECK(j);
        j->p = p;
        j->fd = fd;
        j->index = p->nconn;
        /* Counted before the script runs: a fast script could otherwise
         * answer before the count shows its connection. */
        atomic_fetch_add(&p->accepted, 1);
        CHECK(pthread_create(&p->conn[p->nconn], NULL,
                             hv_h2() ? hc_gw_conn_main : hc_peer_conn_main, j) == 0);
        p->nconn++;
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

/* Starts a peer whose connections run `fn`. */
static inline void hc_peer_start(hc_peer *p, hc_peer_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->lock, NULL);
    p->fn = fn;
    p->arg = arg;
    p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(p->lfd >= 0);
    int one = 1;
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(p->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(p->lfd, 128) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(p->lfd, (struct sockaddr *)&a, &len) == 0);
    p->port = ntohs(a.sin_port);
    CHECK(pthread_create(&p->thr, NULL, hc_peer_main, p) == 0);
}

/* Stops accepting and joins every connection's script. */
static inline void hc_peer_stop(hc_peer *p)
{
    atomic_store(&p->stop, 1);
    pthread_join(p->thr, NULL);
    for (int i = 0; i < p->nconn; i++)
        pthread_join(p->conn[i], NULL);
    close(p->lfd);
    pthread_mutex_destroy(&p->lock);
}

/* Writes everything (or gives up on error). */
static inline int hc_write(int fd, const void *buf, size_t len)
{
    const char *b = buf;
    while (len) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        b += n;
        len -= (size_t)n;
    }
    return 0;
}

static inline int hc_writes(int fd, const char *s)
{
    return hc_write(fd, s, strlen(s));
}

/* Sends an RST instead of a FIN when closed. */
static inline void hc_set_linger0(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* Reads whole requests off a connection. */
typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
    /* The last request read: */
    char head[8192];
    size_t head_len;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    loom_http_request_t req;
    loom_http_header_t hdrs[64];
    size_t nhdrs;
    int timeout_ms; /* poll timeout per read; 0: 5000 */
} hc_reader;

static inline void hc_reader_init(hc_reader *r, int fd)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
}

static inline int hc_reader_fill(hc_reader *r)
{
    if (r->len == sizeof r->buf)
        return -1;
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    if (poll(&pfd, 1, r->timeout_ms ? r->timeout_ms : 5000) <= 0)
        return -1;
    ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
    if (n <= 0)
        return -1;
    r->len += (size_t)n;
    return 0;
}

/* Reads the next request (head and body). Returns 0, or -1 on EOF/error. */
static inline int hc_read_request(hc_reader *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    int hl;
    for (;;) {
        r->nhdrs = 64;
        hl = loom_http_parse_request(r->buf, r->len, 0, &r->req, r->hdrs, &r->nhdrs, NULL);
        if (hl > 0)
            break;
        if (hl != LOOM_HTTP_INCOMPLETE)
            return -1;
        if (hc_reader_fill(r) < 0)
            return -1;
    }
    CHECK((size_t)hl < sizeof r->head);
    memcpy(r->head, r->buf, (size_t)hl);
    r->head[hl] = '\0';
    r->head_len = (size_t)hl;
    /* Re-point the parse at the copy, so it survives the buffer moving. */
    r->nhdrs = 64;
    CHECK_EQ(loom_http_parse_request(r->head, r->head_len, 0, &r->req, r->hdrs, &r->nhdrs, NULL),
             hl);
    memmove(r->buf, r->buf + hl, r->len - (size_t)hl);
    r->len -= (size_t)hl;
    loom_http_framing_t fr;
    loom_http_request_framing(&r->req, &fr);
    loom_http_body_t bd;
    loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
    CHECK_OK(loom_http_body_init(&bd, &fr, &lim));
    size_t cap = 1024;
    r->body = malloc(cap);
    CHECK(r->body);
    for (;;) {
        loom_http_body_out_t out = {0};
        int n = loom_http_body_parse(&bd, r->buf, r->len, &out);
        if (n < 0)
            return -1;
        if (out.data_len) {
            while (cap < r->body_len + out.data_len + 1)
                cap *= 2;
            r->body = realloc(r->body, cap);
            CHECK(r->body);
            memcpy(r->body + r->body_len, out.data, out.data_len);
            r->body_len += out.data_len;
        }
        memmove(r->buf, r->buf + n, r->len - (size_t)n);
        r->len -= (size_t)n;
        if (out.done)
            break;
        if ((n == 0 || r->len == 0) && hc_reader_fill(r) < 0)
            return -1;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* The value of header `name` of the last request, NUL-terminated in a
 * static buffer, or NULL. */
static inline const char *hc_req_header(hc_reader *r, const char *name)
{
    static _Thread_local char v[1024];
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strlen(name) == r->hdrs[i].name_len &&
            strncasecmp(name, r->hdrs[i].name, r->hdrs[i].name_len) == 0) {
            size_t n = r->hdrs[i].value_len < sizeof v - 1 ? r->hdrs[i].value_len : sizeof v - 1;
            memcpy(v, r->hdrs[i].value, n);
            v[n] = '\0';
            return v;
        }
    }
    return NULL;
}

/* Waits until the peer closes (or `ms` pass). */
static inline void hc_wait_eof(int fd, int ms)
{
    char b[4096];
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, ms) <= 0)
            return;
        if (recv(fd, b, sizeof b, 0) <= 0)
            return;
    }
}

/* --- The client side --------------------------------------------------------- */

typedef struct hc_result {
    int done;
    int status;
    char *body; /* malloc'd copy, NUL-terminated */
    size_t body_len;
    int nheaders;
    char headers[4096]; /* "name: value\n" lines */
    char url[512];
    int reused;
    unsigned redirects;
    int version; /* loom_http_client_response_version(): 11, 10 or 20 */
    int ev_kind, ev_code;
    char msg[512];
    uint64_t done_at;
    loom_loop_t *loop;
} hc_result;

static inline void hc_on_response(loom_http_client_req_t *req,
                                  const loom_http_client_response_t *res, void *data)
{
    hc_result *r = data;
    (void)req;
    CHECK(!r->done);
    r->done = 1;
    r->status = res->status;
    r->reused = res->reused;
    r->redirects = res->redirects;
    r->version = loom_http_client_response_version(res);
    /* The HTTP/2 run of a test (http_version.h) may not fall back. */
    if (hv_h2())
        CHECK_EQ(r->version, 20);
    snprintf(r->url, sizeof r->url, "%s", res->url);
    if (res->body) {
        r->body = malloc(res->body_len + 1);
        CHECK(r->body);
        memcpy(r->body, res->body, res->body_len);
        r->body[res->body_len] = '\0';
        r->body_len = res->body_len;
    }
    r->nheaders = (int)res->nheaders;
    size_t off = 0;
    for (size_t i = 0; i < res->nheaders && off < sizeof r->headers - 1; i++)
        off += (size_t)snprintf(r->headers + off, sizeof r->headers - off, "%.*s: %.*s\n",
                                (int)res->headers[i].name_len, res->headers[i].name,
                                (int)res->headers[i].value_len, res->headers[i].value);
    if (r->loop)
        r->done_at = loom_now(r->loop);
}

static inline void hc_on_event(const loom_event_t *ev, void *data)
{
    hc_result *r = data;
    CHECK(!r->done);
    CHECK(ev->object != NULL);
    r->done = 2;
    r->ev_kind = (int)ev->kind;
    r->ev_code = ev->code;
    snprintf(r->msg, sizeof r->msg, "%s", ev->msg);
    if (r->loop)
        r->done_at = loom_now(r->loop);
}

static inline void hc_result_free(hc_result *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Runs the loop until *flag or `ms` pass. */
static inline void hc_run_until(loom_loop_t *loop, volatile int *flag, unsigned ms)
{
    loom_update_time(loop);
    uint64_t end = loom_now(loop) + ms;
    while (!*flag && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
}

/* A GET with the recorder as callbacks (in the HTTP/2 run, over HTTP/2
 * unless `extra` chooses a version). */
static inline void hc_get(loom_loop_t *loop, const char *url, hc_result *res,
                          const loom_http_request_opts *extra)
{
    loom_http_request_opts o = extra ? *extra : (loom_http_request_opts){0};
    if (o.version == LOOM_HTTP_VERSION_AUTO)
        o.version = hv_client_version();
    o.on_response = hc_on_response;
    o.on_event = hc_on_event;
    o.data = res;
    res->loop = loop;
    CHECK_OK(loom_http_request(loop, url, &o, NULL));
}

/* Ends a test loop: closes the idle pool, runs the closes and checks the
 * loop is clean. */
static inline void hc_loop_done(loom_loop_t *loop)
{
    loom_http_client_close_idle(loop);
    loom_run(loop, LOOM_RUN_NOWAIT);
    test_loop_free_clean(loop);
}

#include "hc_h2_gateway.h"

#endif
