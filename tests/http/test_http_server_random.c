/* test_http_server_random: a seeded random workout of the connection state
 * machine. Client threads send pipelined streams of requests (GET, POST
 * with Content-Length or chunked bodies), split at random points with small
 * pauses, sometimes ending in garbage or closing early; the application
 * answers at once, later from a timer, streamed, or releases the request.
 * Every stream that should be answered in full is checked answer by answer
 * (order and bodies); nothing may crash or leak (run it under ASan), and the
 * loop must end clean. */
#include "test_http_server_util.h"

#define NCLIENTS 3
#define NCONNS   40 /* per client */
#define MAXREQ   12

static loom_loop_t *g_loop;
static int nanswered, nreleased, nclosed;

/* Modes, chosen by the client and carried in the path: /<index>/<mode>. */
enum { M_NOW = 0, M_LATER, M_STREAM, M_RELEASE, M_NMODES };

static void later_cb(loom_timer_t *t, void *data)
{
    loom_http_req_t *req = data;
    char body[64];
    size_t pl, bl;
    const char *p = loom_http_req_path(req, &pl);
    loom_http_req_body(req, &bl);
    snprintf(body, sizeof body, "%.*s:%zu", (int)pl, p, bl);
    int r = loom_http_respond(req, 200, NULL, body, strlen(body));
    CHECK(r == 0 || r == LOOM_ECLOSED);
    nanswered++;
    loom_timer_close(t);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t pl, bl;
    const char *p = loom_http_req_path(req, &pl);
    loom_http_req_body(req, &bl);
    int mode = p[pl - 1] - '0';
    char body[64];
    snprintf(body, sizeof body, "%.*s:%zu", (int)pl, p, bl);
    switch (mode) {
    case M_NOW:
        CHECK_OK(loom_http_respond(req, 200, NULL, body, strlen(body)));
        nanswered++;
        break;
    case M_LATER: {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(g_loop, &t, later_cb, req));
        CHECK_OK(loom_timer_start(t, (uint64_t)(bl % 4), 0));
        break;
    }
    case M_STREAM: {
        size_t len = strlen(body);
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        int w = 0;
        for (size_t i = 0; i < len && w >= 0; i += 3) {
            /* LOOM_ECLOSED once a send to a client that reset has failed */
            w = loom_http_response_write(req, body + i, len - i < 3 ? len - i : 3);
            CHECK(w >= 0 || w == LOOM_ECLOSED);
        }
        w = loom_http_response_end(req);
        CHECK(w == 0 || w == LOOM_ECLOSED);
        nanswered++;
        break;
    }
    default:
        CHECK_OK(loom_http_req_release(req));
        nreleased++;
        break;
    }
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    (void)req;
    nclosed++; /* the timer answers it and gets LOOM_ECLOSED */
}

typedef struct {
    int port;
    unsigned seed;
    int checked, failures;
    atomic_int done;
    pthread_t th;
} client_t;

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* Reads one answer's body from buf (a complete response is known to be
 * there): returns its length and sets *body. */
static size_t answer_body(const char *buf, size_t len, const char **body, size_t *used, char *tmp,
                          size_t tmpsz)
{
    loom_http_response_t res;
    loom_http_header_t h[32];
    size_t nh = 32;
    int r = loom_http_parse_response(buf, len, 0, &res, h, &nh, NULL);
    CHECK(r > 0);
    loom_http_framing_t fr;
    loom_http_response_framing(&res, LOOM_HTTP_METHOD_GET, &fr);
    loom_http_body_t bd;
    loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
    CHECK_OK(loom_http_body_init(&bd, &fr, &lim));
    size_t p = (size_t)r, n = 0;
    for (;;) {
        loom_http_body_out_t o;
        memset(&o, 0, sizeof o);
        int k = loom_http_body_parse(&bd, buf + p, len - p, &o);
        CHECK(k >= 0);
        p += (size_t)k;
        if (o.data_len) {
            CHECK(n + o.data_len < tmpsz);
            memcpy(tmp + n, o.data, o.data_len);
            n += o.data_len;
        }
        if (o.done || fr.kind == LOOM_HTTP_BODY_NONE)
            break;
        CHECK(k > 0 || o.data_len > 0);
    }
    tmp[n] = '\0';
    *body = tmp;
    *used = p;
    return n;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    static __thread char stream[MAXREQ * 512];
    static __thread char expect[MAXREQ][64];
    for (int k = 0; k < NCONNS; k++) {
        int nreq = 1 + (int)(rnd(&c->seed) % MAXREQ);
        size_t n = 0;
        int full = 1, nexp = 0;
        for (int i = 0; i < nreq; i++) {
            int mode = (int)(rnd(&c->seed) % M_NMODES);
            int kind = (int)(rnd(&c->seed) % 3);
            size_t bl = kind ? rnd(&c->seed) % 200 : 0;
            char path[32];
            snprintf(path, sizeof path, "/%d/%d", i, mode);
            if (kind == 0) {
                n += (size_t)snprintf(stream + n, sizeof stream - n,
                                      "GET %s HTTP/1.1\r\nHost: r\r\n\r\n", path);
            } else if (kind == 1) {
                n += (size_t)snprintf(stream + n, sizeof stream - n,
                                      "POST %s HTTP/1.1\r\nHost: r\r\nContent-Length: %zu\r\n\r\n",
                                      path, bl);
                memset(stream + n, 'b', bl);
                n += bl;
            } else {
                n += (size_t)snprintf(
                    stream + n, sizeof stream - n,
                    "POST %s HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n", path);
                size_t left = bl;
                while (left) {
                    size_t ch = 1 + rnd(&c->seed) % 64;
                    if (ch > left)
                        ch = left;
                    n += (size_t)snprintf(stream + n, sizeof stream - n, "%zx\r\n", ch);
                    memset(stream + n, 'c', ch);
                    n += ch;
                    n += (size_t)snprintf(stream + n, sizeof stream - n, "\r\n");
                    left -= ch;
                }
                n += (size_t)snprintf(stream + n, sizeof stream - n, "0\r\n\r\n");
            }
            if (full) {
                if (mode == M_RELEASE)
                    full = 0; /* the connection ends at this request */
                else
                    snprintf(expect[nexp++], sizeof expect[0], "%s:%zu", path, bl);
            }
        }
        int garbage = rnd(&c->seed) % 8 == 0;
        int early = rnd(&c->seed) % 8 == 0;
        if (garbage)
            n += (size_t)snprintf(stream + n, sizeof stream - n, "BAD REQUEST\r\n\r\n");

        int fd = hs_connect(c->port);
        size_t off = 0;
        while (off < n) {
            size_t piece = 1 + rnd(&c->seed) % 300;
            if (piece > n - off)
                piece = n - off;
            if (send(fd, stream + off, piece, MSG_NOSIGNAL) <= 0)
                break;
            off += piece;
            if (rnd(&c->seed) % 4 == 0)
                usleep(200);
            if (early && off > n / 2)
                break;
        }
        if (early) {
            close(fd);
            continue;
        }
        /* Read until the expected answers are in (and, when the stream
         * ends in a release or garbage, until the server closes). */
        static __thread char resp[1 << 16];
        size_t rl = 0;
        int closed = 0;
        uint64_t end = hs_now_ms() + 5000;
        for (;;) {
            int got = hs_count_responses(resp, rl, LOOM_HTTP_METHOD_GET, NULL, 64);
            if (got >= nexp + (garbage && full ? 1 : 0) && (full && !garbage))
                break;
            if (closed || hs_now_ms() > end)
                break;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 100) != 1)
                continue;
            ssize_t r = recv(fd, resp + rl, sizeof resp - rl, 0);
            if (r <= 0)
                closed = 1;
            else
                rl += (size_t)r;
        }
        close(fd);
        size_t pos = 0;
        for (int i = 0; i < nexp; i++) {
            const char *body;
            size_t used;
            char tmp[256];
            if (hs_count_responses(resp + pos, rl - pos, LOOM_HTTP_METHOD_GET, NULL, 1) != 1) {
                fprintf(stderr, "conn %d: answer %d of %d missing\n", k, i, nexp);
                c->failures++;
                break;
            }
            answer_body(resp + pos, rl - pos, &body, &used, tmp, sizeof tmp);
            if (strcmp(body, expect[i]) != 0) {
                fprintf(stderr, "conn %d: answer %d is \"%s\", expected \"%s\"\n", k, i, body,
                        expect[i]);
                c->failures++;
                break;
            }
            pos += used;
            c->checked++;
        }
    }
    atomic_store(&c->done, 1);
    return NULL;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = g_loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    /* $LOOM_TEST_SEED picks another workout. */
    const char *env = getenv("LOOM_TEST_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : 12345u;
    client_t cl[NCLIENTS];
    for (int i = 0; i < NCLIENTS; i++) {
        memset(&cl[i], 0, sizeof cl[i]);
        cl[i].port = loom_http_server_port(srv);
        cl[i].seed = seed + (unsigned)i * 7919u;
        CHECK(pthread_create(&cl[i].th, NULL, client_main, &cl[i]) == 0);
    }
    uint64_t end = hs_now_ms() + 50000;
    for (int i = 0; i < NCLIENTS; i++) {
        while (!atomic_load(&cl[i].done) && hs_now_ms() < end)
            hs_run_for(loop, 20);
        CHECK(atomic_load(&cl[i].done));
        pthread_join(cl[i].th, NULL);
    }
    int checked = 0, failures = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        checked += cl[i].checked;
        failures += cl[i].failures;
    }
    fprintf(stderr, "answers checked %d, answered %d, released %d, on_close %d\n", checked,
            nanswered, nreleased, nclosed);
    CHECK_EQ(failures, 0);
    CHECK(checked > 100);
    /* Deferred answers to gone clients still pending: let them run. */
    hs_run_for(loop, 50);
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
