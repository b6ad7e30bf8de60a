/* test_tls_idle: what an idle TLS connection costs a loom server in user
 * space after its handshake. /usr/bin/python3 opens N TLS connections (a
 * separate process, so that only the server's side is counted) and leaves
 * them idle; the server's RSS and malloc'ed bytes (mallinfo2) before and
 * after, divided by N, are printed, and bounded (< 32 KiB each: about
 * 15.5 KiB with SSL_MODE_RELEASE_BUFFERS, 48 KiB malloc'ed without), so
 * that a record buffer kept per connection fails the test. Not bounded
 * under sanitizers (their allocator). Runs once, not per backend (the
 * figure is the TLS layer's): LOOM_TEST_NO_BACKEND.
 */
#include <malloc.h>

#include "tls_test_util.h"

#define N 400

#if defined(__SANITIZE_ADDRESS__)
#define IDLE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IDLE_SANITIZED 1
#endif
#endif

static int accepts, closes;

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    accepts++;
}

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long total = 0, res = 0;
    CHECK(f && fscanf(f, "%lu %lu", &total, &res) == 2);
    fclose(f);
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

static const char py_clients[] =
    "import ssl, socket, sys\n"
    "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
    "socks = []\n"
    "for i in range(int(sys.argv[3])):\n"
    "    raw = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
    "    socks.append(ctx.wrap_socket(raw, server_hostname='localhost'))\n"
    "print('READY', flush=True)\n"
    "sys.stdin.read()\n";

typedef struct {
    tls_proc *p;
    int accepts;
} ready;

static bool ready_pred(void *arg)
{
    ready *r = arg;
    return accepts >= r->accepts && (r->p == NULL || tls_proc_has(r->p, "READY"));
}

int main(void)
{
    test_timeout(60);
    if (access("/usr/bin/python3", X_OK) != 0)
        TEST_SKIP("/usr/bin/python3 missing");
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){
            .tls = sctx, .on_connect = srv_connect, .on_close = on_close, .backlog = 1024},
        &srv));
    loom_tls_ctx_free(sctx);
    char port[16];
    snprintf(port, sizeof port, "%d", loom_tcp_server_port(srv));

    /* A first batch warms everything up (OpenSSL's tables, the per-loop
     * blocks, slabs); the second is measured. */
    tls_proc warmp, p;
    char n[16];
    snprintf(n, sizeof n, "%d", N);
    char *argv[] = {
        "/usr/bin/python3", "-c", (char *)py_clients, (char *)tls_path("ca.pem"), port, n, NULL};
    tls_spawn(&warmp, argv);
    CHECK(tls_run_pred(loop, ready_pred, &(ready){&warmp, N}, 30000));
    size_t rss0 = rss();
    size_t heap0 = mallinfo2().uordblks;
    tls_spawn(&p, argv);
    CHECK(tls_run_pred(loop, ready_pred, &(ready){&p, 2 * N}, 30000));
    /* Let the last tickets and acknowledgements settle. */
    int none = 0;
    (void)tls_run_until(loop, &none, 200);
    size_t rss1 = rss();
    size_t heap1 = mallinfo2().uordblks;
    long per_rss = ((long)rss1 - (long)rss0) / N;
    long per_heap = ((long)heap1 - (long)heap0) / N;
    printf("tls idle: %d idle server connections after the handshake: %ld bytes RSS, %ld bytes "
           "malloc'ed each\n",
           N, per_rss, per_heap);
#ifndef IDLE_SANITIZED
    CHECK(per_heap < 32 * 1024);
    CHECK(per_rss < 32 * 1024);
#endif

    CHECK_EQ(tls_proc_end(&p, 10000), 0);
    CHECK_EQ(tls_proc_end(&warmp, 10000), 0);
    for (uint64_t end = tls_now_ms() + 10000; closes < 2 * N && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, 2 * N);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls idle: ok\n");
    return 0;
}
