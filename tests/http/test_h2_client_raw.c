/* test_h2_client_raw: loom's HTTP/2 client (h2c with prior knowledge)
 * against a raw h2c server written in C (frames and HPACK literal fields
 * made by hand, as fuzz/fuzz_h2_client.c's inputs are): the cases that
 * fuzzer found, kept as regressions. Each case answers every request
 * HEADERS the client sends with its own frames; the request must end once,
 * with the expected status or an error whose message names the origin.
 *   - a :status below 100 ("020") is a malformed response (it was a final
 *     answer with status 20), and loom resets the stream;
 *   - redirects: a server that redirects every request to itself ends the
 *     request after max_redirects with "too many redirects", naming the
 *     origin of the last one (it did not over HTTP/2).
 */
#include "hc_test.h"

static loom_loop_t *loop;

/* --- A raw h2c server ---------------------------------------------------------------- */

static void frame(uint8_t *out, size_t *n, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                  size_t len)
{
    uint8_t *o = out + *n;
    o[0] = (uint8_t)(len >> 16);
    o[1] = (uint8_t)(len >> 8);
    o[2] = (uint8_t)len;
    o[3] = type;
    o[4] = flags;
    o[5] = (uint8_t)(sid >> 24);
    o[6] = (uint8_t)(sid >> 16);
    o[7] = (uint8_t)(sid >> 8);
    o[8] = (uint8_t)sid;
    if (len)
        memcpy(o + 9, p, len);
    *n += 9 + len;
}

/* HPACK: literal fields without indexing, new names, no Huffman; strings
 * under 127 bytes. */
static size_t hpack(uint8_t *out, const char *const *fields)
{
    size_t n = 0;
    for (; fields[0]; fields += 2) {
        size_t nl = strlen(fields[0]), vl = strlen(fields[1]);
        CHECK(nl < 127 && vl < 127);
        out[n++] = 0;
        out[n++] = (uint8_t)nl;
        memcpy(out + n, fields[0], nl);
        n += nl;
        out[n++] = (uint8_t)vl;
        memcpy(out + n, fields[1], vl);
        n += vl;
    }
    return n;
}

static void headers(uint8_t *out, size_t *n, uint32_t sid, int end, const char *const *fields)
{
    uint8_t blk[1024];
    size_t bl = hpack(blk, fields);
    frame(out, n, 1, 4 | (end ? 1 : 0), sid, blk, bl);
}

static int recvn(int fd, uint8_t *b, size_t n)
{
    while (n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            return -1;
        ssize_t k = recv(fd, b, n, 0);
        if (k <= 0)
            return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A case: how the server answers the client's nth request HEADERS on
 * stream sid (frames appended to out). */
typedef void (*answer_fn)(uint8_t *out, size_t *n, uint32_t sid, int nth);
static answer_fn answer; /* the current case's */

static void serve(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    uint8_t b[16384 + 9], out[4096];
    size_t n = 0;
    if (recvn(fd, b, 24) < 0)
        return;
    frame(out, &n, 4, 0, 0, NULL, 0); /* SETTINGS */
    if (hc_write(fd, out, n) < 0)
        return;
    for (int nth = 0;;) {
        if (recvn(fd, b, 9) < 0)
            return;
        size_t len = (size_t)b[0] << 16 | (size_t)b[1] << 8 | b[2];
        uint8_t type = b[3], flags = b[4];
        uint32_t sid = ((uint32_t)b[5] << 24 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 8 | b[8]) &
                       0x7fffffffu;
        if (len > sizeof b || recvn(fd, b, len) < 0)
            return;
        n = 0;
        if (type == 4 && !(flags & 1))
            frame(out, &n, 4, 1, 0, NULL, 0); /* SETTINGS ACK */
        if (type == 1)
            answer(out, &n, sid, nth++);
        if (n && hc_write(fd, out, n) < 0)
            return;
    }
}

/* --- The client ------------------------------------------------------------------------ */

static hc_result run_case(answer_fn fn, const loom_http_request_opts *extra)
{
    hc_peer peer;
    answer = fn;
    hc_peer_start(&peer, serve, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/start", peer.port);
    loom_http_request_opts o = extra ? *extra : (loom_http_request_opts){0};
    o.version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
    hc_result r = {0};
    hc_get(loop, url, &r, &o);
    hc_run_until(loop, &r.done, 10000);
    CHECK(r.done);
    loom_http_client_close_idle(loop);
    for (int i = 0; i < 20 && loom_loop_live(loop) > 0; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
    hc_peer_stop(&peer);
    char where[32];
    snprintf(where, sizeof where, "127.0.0.1:%d", peer.port);
    if (r.done == 2 && !strstr(r.msg, where)) {
        fprintf(stderr, "no origin in \"%s\"\n", r.msg);
        CHECK(0);
    }
    return r;
}

/* --- The cases --------------------------------------------------------------------------- */

static void redirect_always(uint8_t *out, size_t *n, uint32_t sid, int nth)
{
    (void)nth;
    headers(out, n, sid, 1, (const char *const[]){":status", "301", "location", "/again", NULL});
}

static void status_020(uint8_t *out, size_t *n, uint32_t sid, int nth)
{
    (void)nth;
    headers(out, n, sid, 0, (const char *const[]){":status", "020", "content-length", "2", NULL});
    frame(out, n, 0, 1, sid, "ok", 2);
}

static void status_ok(uint8_t *out, size_t *n, uint32_t sid, int nth)
{
    (void)nth;
    headers(out, n, sid, 0, (const char *const[]){":status", "200", "content-length", "2", NULL});
    frame(out, n, 0, 1, sid, "ok", 2);
}

/* A :status of "020" was a final answer with status 20 (nghttp2 checks
 * for digits only); the HTTP/1 parser refuses a status below 100. */
static void test_status_below_100(void)
{
    hc_result r = run_case(status_020, NULL);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_EPROTOCOL);
    CHECK(strstr(r.msg, "malformed response from 127.0.0.1:"));
    CHECK(strstr(r.msg, "invalid :status \"020\""));
    hc_result_free(&r);
    r = run_case(status_ok, NULL); /* the same server with a good status */
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    CHECK_EQ(r.version, 20);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);
}

static void test_too_many_redirects(void)
{
    hc_result r = run_case(redirect_always,
                           &(loom_http_request_opts){.follow_redirects = true, .max_redirects = 2});
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_ETOOMANY);
    CHECK(strstr(r.msg, "too many redirects (more than 2"));
    hc_result_free(&r);
}

int main(void)
{
    test_timeout(60);
    loop = test_loop_new();
    test_status_below_100();
    test_too_many_redirects();
    hc_loop_done(loop);
    printf("ok\n");
    return 0;
}
