/* tests/http/test_http_server_util.h - helpers shared by the
 * test_http_server_* tests: running the loop while a client works (a child
 * process such as curl or python3, or a raw socket client on a thread), and
 * reading HTTP responses on the client side with loom's own parser. */
#ifndef LOOM_TEST_HTTP_SERVER_UTIL_H
#define LOOM_TEST_HTTP_SERVER_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http_version.h"
#include "test.h"

static inline uint64_t hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A timer that keeps the loop from sleeping longer than 5 ms, so helpers can
 * poll for a child or a thread between iterations. */
static void hs_tick_cb(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}

/* Runs the loop until *flag becomes non-zero or `ms` pass. Returns 1 if the
 * flag was set. */
static inline int hs_run_until(loom_loop_t *loop, atomic_int *flag, unsigned ms)
{
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, hs_tick_cb, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = hs_now_ms() + ms;
    while (!atomic_load(flag) && hs_now_ms() < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(tick);
    loom_run(loop, LOOM_RUN_NOWAIT);
    return atomic_load(flag) != 0;
}

/* Runs the loop for `ms` milliseconds. */
static inline void hs_run_for(loom_loop_t *loop, unsigned ms)
{
    atomic_int never = 0;
    hs_run_until(loop, &never, ms);
}

/* --- Child processes ------------------------------------------------------- */

/* Runs argv (stdout and stderr captured, stdin from `input` if not NULL)
 * while the loop runs; returns the exit status (or -1 if it timed out and
 * was killed). The output is NUL-terminated in out[0..size). */
static inline int hs_run_child_once(loom_loop_t *loop, char *const argv[], const char *input,
                                    size_t input_len, char *out, size_t size, unsigned timeout_ms)
{
    char tmpl[] = "/tmp/loom-hs-XXXXXX";
    int ofd = mkstemp(tmpl);
    CHECK(ofd >= 0);
    unlink(tmpl);
    int in_pipe[2] = {-1, -1};
    if (input)
        CHECK(pipe(in_pipe) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(ofd, 2);
        if (input) {
            dup2(in_pipe[0], 0);
            close(in_pipe[1]);
        } else {
            int nul = open("/dev/null", O_RDONLY);
            dup2(nul, 0);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    if (input) {
        close(in_pipe[0]);
        /* Small inputs fit the pipe; write them and close. */
        CHECK(write(in_pipe[1], input, input_len) == (ssize_t)input_len);
        close(in_pipe[1]);
    }
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, hs_tick_cb, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = hs_now_ms() + timeout_ms;
    int status = 0, done = 0;
    while (!done) {
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            done = 1;
        else if (hs_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            status = -1;
            done = 2;
        }
    }
    loom_timer_close(tick);
    loom_run(loop, LOOM_RUN_NOWAIT);
    ssize_t n = pread(ofd, out, size - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(ofd);
    if (done == 2)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* hs_run_child_once(), with the HTTP/2 run of a test (http_version.h) in
 * mind: curl gets --http2-prior-knowledge, so it cannot fall back to
 * HTTP/1.1. curl 7.88 (Debian 12) cannot reuse a connection it opened with
 * prior knowledge (curl issue 10634, fixed in 8.0: the second URL fails with
 * exit 16), so there a curl call with several URLs runs as one call per URL,
 * each on its own connection, the outputs one after the other and the first
 * failure's status returned. */
static inline int hs_run_child(loom_loop_t *loop, char *const argv[], const char *input,
                               size_t input_len, char *out, size_t size, unsigned timeout_ms)
{
    if (!hv_h2() || strcmp(argv[0], "curl") != 0)
        return hs_run_child_once(loop, argv, input, input_len, out, size, timeout_ms);
    char *opts[64];
    const char *urls[16];
    int nopts = 0, nurls = 0;
    opts[nopts++] = argv[0];
    opts[nopts++] = "--http2-prior-knowledge";
    for (int i = 1; argv[i]; i++) {
        if (strncmp(argv[i], "http://", 7) == 0) {
            CHECK(nurls < 16);
            urls[nurls++] = argv[i];
        } else {
            CHECK(nopts < 62);
            opts[nopts++] = argv[i];
        }
    }
    if (nurls <= 1) {
        for (int i = 0; i < nurls; i++)
            opts[nopts++] = (char *)urls[i];
        opts[nopts] = NULL;
        return hs_run_child_once(loop, opts, input, input_len, out, size, timeout_ms);
    }
    int status = 0;
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < nurls; i++) {
        opts[nopts] = (char *)urls[i];
        opts[nopts + 1] = NULL;
        int st = hs_run_child_once(loop, opts, input, input_len, out + len, size - len, timeout_ms);
        len += strlen(out + len);
        if (status == 0)
            status = st;
    }
    return status;
}

/* Fails the test unless a child's output `out` contains `want` (and says which). */
static inline void hs_expect_in(const char *out, const char *want)
{
    if (strstr(out, want) == NULL) {
        fprintf(stderr, "expected \"%s\"\n", want);
        CHECK(0);
    }
}

/* In a forked child that does not exec: closes every inherited descriptor
 * above 2 except `keep` (the parent's listening socket above all, which
 * would otherwise keep accepting into the child's copy). */
static inline void hs_child_close_fds(int keep)
{
    for (int fd = 3; fd < 4096; fd++)
        if (fd != keep)
            close(fd);
}

/* Returns 1 if `tool` can be run. */
static inline int hs_have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* --- Raw clients ------------------------------------------------------------------ */

static inline int hs_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Parses complete responses from buf[0..len) (answers to `method`): returns
 * how many are complete; *statuses (if not NULL) gets their codes. */
static inline int hs_count_responses(const char *buf, size_t len, loom_http_method_t method,
                                     int *statuses, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < len && n < max) {
        loom_http_response_t res;
        loom_http_header_t h[64];
        size_t nh = 64;
        int r = loom_http_parse_response(buf + off, len - off, 0, &res, h, &nh, NULL);
        if (r <= 0)
            break;
        loom_http_framing_t fr;
        loom_http_response_framing(&res, method, &fr);
        size_t p = off + (size_t)r;
        if (fr.kind != LOOM_HTTP_BODY_NONE) {
            loom_http_body_t bd;
            loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
            if (loom_http_body_init(&bd, &fr, &lim) < 0)
                break;
            int done = 0;
            while (!done) {
                loom_http_body_out_t o;
                memset(&o, 0, sizeof o);
                int k = loom_http_body_parse(&bd, buf + p, len - p, &o);
                if (k < 0)
                    return n;
                p += (size_t)k;
                if (o.done)
                    done = 1;
                else if (k == 0 && o.data_len == 0)
                    return n;
            }
        }
        if (fr.informational) {
            off = p;
            continue;
        }
        if (statuses)
            statuses[n] = res.status;
        n++;
        off = p;
    }
    return n;
}

/* A raw client on a thread: connects, sends `req` (in pieces of `chunk`
 * bytes with `gap_ms` between them if chunk > 0), then reads until it has
 * `want` complete responses, the server closes, or `timeout_ms` pass. */
typedef struct hs_raw {
    int port;
    const char *req;
    size_t req_len;
    size_t chunk;
    unsigned gap_ms;
    int want;
    unsigned timeout_ms;
    loom_http_method_t method;
    int shut_wr;
    unsigned read_delay_ms; /* sleep after sending, before reading */
    /* results */
    char *resp;
    size_t resp_len;
    int nresp;
    int closed; /* the server closed (eof or reset) */
    int reset;
    char h2_event[256]; /* HTTP/2 run: the message of an event that ended a request */
    atomic_int done;
    pthread_t th;
} hs_raw;

/* --- The raw client in the HTTP/2 run ---------------------------------------------
 *
 * In the HTTP/2 run of a test (http_version.h) the raw client does not send
 * its bytes: it parses them into requests (loom's parser) and sends those
 * with loom's client on a loop of its own thread, all at once as streams of
 * one h2c connection (multiplexing stands for pipelining). Each answer is
 * rebuilt as HTTP/1.1 text for the test to read: "HTTP/1.1 <status> H2",
 * the fields as received (lower-case names), a content-length when the
 * answer had none (a streamed one), and the body; the answers follow each
 * other in the order of the requests. `want` answers, or the timeout, end
 * the exchange; requests still open are then cancelled (RST_STREAM) and the
 * connection closed: the client went away. `closed` says that some request
 * ended without an answer. read_delay_ms pauses each answer's stream after
 * its head (no WINDOW_UPDATE meanwhile); the other pacing fields (chunk,
 * gap_ms, shut_wr) are HTTP/1 byte-stream matters and are not used. */
typedef struct hs_h2req {
    int done; /* 1: answered, 2: an event ended it */
    int head, has_len, status;
    char msg[256];     /* the event's message */
    unsigned delay_ms; /* read nothing for this long after the head */
    char *hd;          /* the fields as received, "name: value\r\n" lines */
    size_t hd_len;
    char *bd; /* the body so far */
    size_t bd_len, bd_cap;
    char *out; /* the rebuilt answer */
    size_t len;
    loom_http_client_req_t *h;
    char **hdrs; /* NULL-terminated name, value pairs (strndup'd) */
    char *body;
    size_t body_len;
} hs_h2req;

static void hs_h2_resume_cb(loom_timer_t *t, void *data)
{
    (void)t;
    hs_h2req *q = data;
    if (q->h)
        CHECK_OK(loom_http_client_resume(q->h));
}

static void hs_h2_on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                             void *data)
{
    (void)req;
    hs_h2req *q = data;
    CHECK_EQ(loom_http_client_response_version(res), 20);
    size_t cap = 1;
    for (size_t i = 0; i < res->nheaders; i++)
        cap += res->headers[i].name_len + res->headers[i].value_len + 4;
    q->hd = malloc(cap);
    CHECK(q->hd != NULL);
    q->hd_len = 0;
    q->hd[0] = '\0';
    for (size_t i = 0; i < res->nheaders; i++) {
        const loom_http_header_t *h = &res->headers[i];
        if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0)
            q->has_len = 1;
        q->hd_len += (size_t)snprintf(q->hd + q->hd_len, cap - q->hd_len, "%.*s: %.*s\r\n",
                                      (int)h->name_len, h->name, (int)h->value_len, h->value);
    }
    q->status = res->status;
    if (q->delay_ms) {
        /* A client that reads nothing for a while: the stream's window
         * is not opened again meanwhile (HTTP/2 flow control). */
        CHECK_OK(loom_http_client_pause(req));
        CHECK_OK(loom_delay(loom_http_client_loop(req), q->delay_ms, hs_h2_resume_cb, q, NULL));
    }
}

static int hs_h2_on_body(loom_http_client_req_t *req, const char *p, size_t n, void *data)
{
    (void)req;
    hs_h2req *q = data;
    if (q->bd_len + n > q->bd_cap) {
        q->bd_cap = (q->bd_len + n) * 2;
        q->bd = realloc(q->bd, q->bd_cap);
        CHECK(q->bd != NULL);
    }
    memcpy(q->bd + q->bd_len, p, n);
    q->bd_len += n;
    return 0;
}

static void hs_h2_on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                              void *data)
{
    (void)req;
    (void)res;
    hs_h2req *q = data;
    q->done = 1;
    q->h = NULL;
}

static void hs_h2_on_event(const loom_event_t *ev, void *data)
{
    hs_h2req *q = data;
    snprintf(q->msg, sizeof q->msg, "%s", ev->msg);
    q->done = 2;
    q->h = NULL;
}

/* The answer as HTTP/1.1 text: complete answers get a length if they had
 * none, a partial one (the stream ended or was cancelled) gets none, so it
 * reads as incomplete. */
static inline void hs_h2_rebuild(hs_h2req *q)
{
    if (q->hd == NULL)
        return;
    size_t cap = 96 + q->hd_len + q->bd_len;
    q->out = malloc(cap);
    CHECK(q->out != NULL);
    size_t n = (size_t)snprintf(q->out, cap, "HTTP/1.1 %d H2\r\n%s", q->status, q->hd);
    if (q->done == 1 && !q->has_len && !q->head && q->status >= 200 && q->status != 204 &&
        q->status != 304)
        n += (size_t)snprintf(q->out + n, cap - n, "content-length: %zu\r\n", q->bd_len);
    n += (size_t)snprintf(q->out + n, cap - n, "\r\n");
    if (q->bd_len)
        memcpy(q->out + n, q->bd, q->bd_len);
    q->len = n + q->bd_len;
}

/* Splits raw HTTP/1 bytes into requests: returns how many (at most max). */
static inline int hs_h2_parse(const char *p, size_t len, hs_h2req *qs, int max)
{
    int nq = 0;
    size_t off = 0;
    while (off < len && nq < max) {
        loom_http_request_t rq;
        loom_http_header_t h[64];
        size_t nh = 64;
        int hl = loom_http_parse_request(p + off, len - off, 0, &rq, h, &nh, NULL);
        if (hl <= 0)
            break;
        hs_h2req *q = &qs[nq];
        memset(q, 0, sizeof *q);
        q->head = rq.method == LOOM_HTTP_METHOD_HEAD;
        q->hdrs = calloc(2 * nh + 6, sizeof *q->hdrs);
        CHECK(q->hdrs != NULL);
        size_t k = 0;
        /* An absolute-form target: its authority is the Host (:authority)
         * and the rest the path. */
        const char *t = rq.target, *auth = NULL;
        size_t tl = rq.target_len, al = 0;
        if (tl > 7 && strncmp(t, "http://", 7) == 0) {
            const char *slash = memchr(t + 7, '/', tl - 7);
            auth = t + 7;
            al = slash ? (size_t)(slash - t - 7) : tl - 7;
            tl -= 7 + al;
            t += 7 + al;
            q->hdrs[k++] = strdup("Host");
            q->hdrs[k++] = strndup(auth, al);
        }
        for (size_t i = 0; i < nh; i++) {
            if ((h[i].name_len == 14 && strncasecmp(h[i].name, "content-length", 14) == 0) ||
                (h[i].name_len == 17 && strncasecmp(h[i].name, "transfer-encoding", 17) == 0) ||
                (auth && h[i].name_len == 4 && strncasecmp(h[i].name, "host", 4) == 0))
                continue;
            q->hdrs[k++] = strndup(h[i].name, h[i].name_len);
            q->hdrs[k++] = strndup(h[i].value, h[i].value_len);
        }
        /* The method and target ride in two extra slots after the NULL. */
        q->hdrs[k] = NULL;
        q->hdrs[k + 1] = strndup(rq.method_str, rq.method_len);
        q->hdrs[k + 2] = tl ? strndup(t, tl) : strdup("/");
        off += (size_t)hl;
        loom_http_framing_t fr;
        loom_http_request_framing(&rq, &fr);
        loom_http_body_t bd;
        loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
        CHECK_OK(loom_http_body_init(&bd, &fr, &lim));
        q->body = malloc(len - off + 1);
        CHECK(q->body != NULL);
        for (;;) {
            loom_http_body_out_t o = {0};
            int r = loom_http_body_parse(&bd, p + off, len - off, &o);
            CHECK(r >= 0);
            if (o.data_len)
                memcpy(q->body + q->body_len, o.data, o.data_len);
            q->body_len += o.data_len;
            off += (size_t)r;
            if (o.done || (r == 0 && o.data_len == 0))
                break;
        }
        nq++;
    }
    return nq;
}

static inline void hs_raw_h2(hs_raw *c)
{
    enum { MAXQ = 128 };
    hs_h2req *qs = calloc(MAXQ, sizeof *qs);
    CHECK(qs != NULL);
    int nq = hs_h2_parse(c->req, c->req_len, qs, MAXQ);
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, NULL));
    for (int i = 0; i < nq; i++) {
        hs_h2req *q = &qs[i];
        size_t k = 0;
        while (q->hdrs[k])
            k++;
        char url[1024];
        snprintf(url, sizeof url, "http://127.0.0.1:%d%s", c->port, q->hdrs[k + 2]);
        loom_http_request_opts o = {.method = q->hdrs[k + 1],
                                    .headers = (const char *const *)q->hdrs,
                                    .body = q->body_len ? q->body : NULL,
                                    .body_len = q->body_len,
                                    .on_headers = hs_h2_on_headers,
                                    .on_body = hs_h2_on_body,
                                    .on_response = hs_h2_on_response,
                                    .on_event = hs_h2_on_event,
                                    .data = q,
                                    .version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE};
        q->delay_ms = c->read_delay_ms;
        CHECK_OK(loom_http_request(loop, url, &o, &q->h));
    }
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, hs_tick_cb, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = hs_now_ms() + (c->timeout_ms ? c->timeout_ms : 5000);
    for (;;) {
        int ndone = 0, nans = 0;
        for (int i = 0; i < nq; i++) {
            ndone += qs[i].done != 0;
            nans += qs[i].done == 1;
        }
        if (ndone == nq || (c->want && nans >= c->want) || hs_now_ms() >= end)
            break;
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }
    loom_timer_close(tick);
    /* The client goes away: what is still open is cancelled. */
    for (int i = 0; i < nq; i++)
        if (qs[i].h) {
            loom_http_client_cancel(qs[i].h);
            qs[i].h = NULL;
            c->closed = 1;
        }
    loom_http_client_close_idle(loop);
    for (int i = 0; i < 3; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
    loom_loop_free(loop);
    for (int i = 0; i < nq; i++)
        hs_h2_rebuild(&qs[i]);
    size_t cap = 1;
    for (int i = 0; i < nq; i++)
        cap += qs[i].len;
    c->resp = malloc(cap);
    CHECK(c->resp != NULL);
    for (int i = 0; i < nq; i++) {
        if (qs[i].done == 2) {
            c->closed = 1;
            snprintf(c->h2_event, sizeof c->h2_event, "%s", qs[i].msg);
        }
        if (qs[i].len)
            memcpy(c->resp + c->resp_len, qs[i].out, qs[i].len);
        c->resp_len += qs[i].len;
        free(qs[i].out);
        free(qs[i].hd);
        free(qs[i].bd);
        for (size_t k = 0; qs[i].hdrs[k]; k += 2) {
            free(qs[i].hdrs[k]);
            free(qs[i].hdrs[k + 1]);
        }
        size_t k = 0;
        while (qs[i].hdrs[k])
            k++;
        free(qs[i].hdrs[k + 1]);
        free(qs[i].hdrs[k + 2]);
        free(qs[i].hdrs);
        free(qs[i].body);
    }
    free(qs);
    c->resp[c->resp_len] = '\0';
    c->nresp = hs_count_responses(c->resp, c->resp_len, c->method, NULL, 1 << 20);
    atomic_store(&c->done, 1);
}

static void *hs_raw_main(void *arg)
{
    hs_raw *c = arg;
    if (hv_h2()) {
        hs_raw_h2(c);
        return NULL;
    }
    int fd = hs_connect(c->port);
    size_t cap = 1 << 16;
    c->resp = malloc(cap);
    CHECK(c->resp != NULL);
    size_t off = 0;
    while (off < c->req_len) {
        size_t n = c->chunk ? c->chunk : c->req_len - off;
        if (n > c->req_len - off)
            n = c->req_len - off;
        ssize_t w = send(fd, c->req + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
        if (c->gap_ms && off < c->req_len)
            usleep(c->gap_ms * 1000);
    }
    if (c->shut_wr)
        shutdown(fd, SHUT_WR);
    if (c->read_delay_ms)
        usleep(c->read_delay_ms * 1000);
    uint64_t end = hs_now_ms() + (c->timeout_ms ? c->timeout_ms : 5000);
    for (;;) {
        if (c->resp_len + 1 >= cap) {
            cap *= 2;
            c->resp = realloc(c->resp, cap);
            CHECK(c->resp != NULL);
        }
        if (c->want && c->nresp >= c->want)
            break;
        int64_t left = (int64_t)(end - hs_now_ms());
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, c->resp + c->resp_len, cap - c->resp_len - 1, 0);
        if (n <= 0) {
            c->closed = 1;
            c->reset = n < 0 && errno == ECONNRESET;
            break;
        }
        c->resp_len += (size_t)n;
        if (c->want)
            c->nresp = hs_count_responses(c->resp, c->resp_len, c->method, NULL, 1 << 20);
    }
    c->nresp = hs_count_responses(c->resp, c->resp_len, c->method, NULL, 1 << 20);
    c->resp[c->resp_len] = '\0'; /* room was kept: tests may strstr() */
    close(fd);
    atomic_store(&c->done, 1);
    return NULL;
}

static inline void hs_raw_start(hs_raw *c)
{
    atomic_store(&c->done, 0);
    if (c->method == LOOM_HTTP_METHOD_OTHER)
        c->method = LOOM_HTTP_METHOD_GET;
    CHECK(pthread_create(&c->th, NULL, hs_raw_main, c) == 0);
}

/* Runs the loop until the client is done, then joins it. */
static inline void hs_raw_finish(loom_loop_t *loop, hs_raw *c)
{
    CHECK(hs_run_until(loop, &c->done, (c->timeout_ms ? c->timeout_ms : 5000) + 3000));
    pthread_join(c->th, NULL);
}

static inline void hs_raw_free(hs_raw *c)
{
    free(c->resp);
    c->resp = NULL;
}

/* One exchange: send `req`, wait for `want` responses (or close). */
static inline void hs_raw_exchange(loom_loop_t *loop, hs_raw *c, int port, const char *req,
                                   int want)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    c->req = req;
    c->req_len = strlen(req);
    c->want = want;
    c->timeout_ms = 3000;
    hs_raw_start(c);
    hs_raw_finish(loop, c);
}

/* --- The example binaries ---------------------------------------------------------- */

/* Starts $LOOM_BINARY_DIR/examples/<name> on 127.0.0.1 port 0 with `extra`
 * (NULL-terminated, may be NULL) and reads the port from its banner
 * ("... port N ..." on stderr, or on stdout with `banner_fd` 1). Returns
 * the pid, or 0 if the binary is not built. */
static inline pid_t hs_start_binary(const char *name, const char *const *extra, int banner_fd,
                                    int *port)
{
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/examples/%s", LOOM_BINARY_DIR, name);
    if (access(exe, X_OK) != 0)
        return 0;
    const char *argv[16] = {exe, "--bind", "127.0.0.1", "--port", "0"};
    int k = 5;
    for (int i = 0; extra && extra[i] && k < 15; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], banner_fd);
        close(pfd[0]);
        close(pfd[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    char line[512];
    size_t n = 0;
    while (n < sizeof line - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0 || read(pfd[0], line + n, 1) <= 0)
            break;
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    close(pfd[0]);
    const char *p = strstr(line, "port ");
    CHECK(p != NULL);
    *port = atoi(p + 5);
    CHECK(*port > 0);
    return pid;
}

/* The resident set of `pid` (0: this process) in bytes, or -1. */
static inline long hs_rss(pid_t pid)
{
    char path[64];
    if (pid == 0)
        snprintf(path, sizeof path, "/proc/self/statm");
    else
        snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long size = 0, res = -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

/* --- Server side helpers ----------------------------------------------------------- */

static atomic_int hs_closed_done;
static void hs_on_closed(loom_http_server_t *srv, void *data)
{
    (void)srv;
    (void)data;
    atomic_store(&hs_closed_done, 1);
}

/* Closes the server (gracefully, or by force) and runs the loop until it is
 * gone. */
static inline void hs_close_server_flags(loom_loop_t *loop, loom_http_server_t *srv, unsigned flags)
{
    atomic_store(&hs_closed_done, 0);
    CHECK_OK(loom_http_server_close(srv, flags, hs_on_closed));
    CHECK(hs_run_until(loop, &hs_closed_done, 8000));
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static inline void hs_close_server(loom_loop_t *loop, loom_http_server_t *srv)
{
    hs_close_server_flags(loop, srv, 0);
}

/* A standard answer of the tests: 200 text/plain `body`. */
static inline void hs_reply(loom_http_req_t *req, const char *body)
{
    static const char *const h[] = {"Content-Type", "text/plain", NULL};
    CHECK_OK(loom_http_respond(req, 200, h, body, strlen(body)));
}

#endif
