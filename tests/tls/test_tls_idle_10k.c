/* test_tls_idle_10k: a loom HTTPS server holds 10,000 idle TLS keep-alive
 * connections. Four /usr/bin/python3 processes (2,500 connections each: the
 * clients' fds are spread over processes, the server's 10,000 stay in this
 * one, under the 20,000 fd limit) each open their connections, make one
 * keep-alive request on every one and leave them idle. The test checks:
 *  - every connection got its answer and is still open in the server
 *    (loom_stats: tcp_incoming), none timed out or was dropped;
 *  - the server's RSS growth per idle connection stays bounded (< 32 KiB:
 *    about 15 KiB with released record buffers; not bounded under
 *    sanitizers, whose allocator differs);
 *  - after the idle period, every 25th connection of each client still
 *    serves a second request (keep-alive, not merely open sockets);
 *  - the clients leave, every connection closes, and the loop ends clean.
 * Under ASan, 1,000 connections instead (see PER).
 * Runs once, not per backend (a scale test of the TLS layer):
 * LOOM_TEST_NO_BACKEND; alone (its 10,000 handshakes would starve the tests
 * beside it): LOOM_TEST_SERIAL.
 */
#include <malloc.h>
#include <sys/resource.h>

#include "tls_test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define IDLE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IDLE_SANITIZED 1
#endif
#endif

/* Under the sanitizers (several times slower per handshake) 1,000
 * connections check the same paths for leaks and misuse; the 10,000 are the
 * normal build's. */
#define PROCS 4
#ifdef IDLE_SANITIZED
#define PER 250
#else
#define PER 2500
#endif
#define N    (PROCS * PER)
#define WARM 200

static int served;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    served++;
    CHECK_OK(loom_http_respond(req, 200, NULL, "ok", 2));
}

static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long total = 0, res = 0;
    CHECK(f && fscanf(f, "%lu %lu", &total, &res) == 2);
    fclose(f);
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* argv: ca port count. Opens `count` TLS connections, one GET on each
 * (keep-alive; the connections after the first resume its session, from a
 * ticket, which halves the handshakes' cost on both sides), prints READY; on "PING" from stdin
 * makes a second request on every 25th connection and prints ALIVE <n>; on EOF closes all and
 * exits. */
static const char py_clients[] =
    "import ssl, socket, sys\n"
    "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
    "port, n = int(sys.argv[2]), int(sys.argv[3])\n"
    "req = b'GET / HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n'\n"
    "def get(s):\n"
    "    s.sendall(req)\n"
    "    buf = b''\n"
    "    while not (b'\\r\\n\\r\\n' in buf and buf.endswith(b'ok')):\n"
    "        d = s.recv(4096)\n"
    "        if not d:\n"
    "            raise SystemExit('closed by the server')\n"
    "        buf += d\n"
    "    if not buf.startswith(b'HTTP/1.1 200'):\n"
    "        raise SystemExit('bad answer %r' % buf[:40])\n"
    "socks = []\n"
    "sess = None\n"
    "for i in range(n):\n"
    "    raw = socket.create_connection(('127.0.0.1', port))\n"
    "    s = ctx.wrap_socket(raw, server_hostname='localhost', session=sess)\n"
    "    get(s)\n"
    "    if sess is None or not s.session_reused:\n"
    "        sess = s.session\n"
    "    socks.append(s)\n"
    "print('READY', flush=True)\n"
    "for line in sys.stdin:\n"
    "    alive = 0\n"
    "    for s in socks[::25]:\n"
    "        get(s)\n"
    "        alive += 1\n"
    "    print('ALIVE %d' % alive, flush=True)\n"
    "for s in socks:\n"
    "    s.close()\n";

typedef struct {
    tls_proc *p;
    int np;
    const char *word;
} all_said;

static bool all_said_pred(void *arg)
{
    all_said *a = arg;
    for (int i = 0; i < a->np; i++)
        if (!tls_proc_has(&a->p[i], a->word))
            return false;
    return true;
}

static bool none_open(void *arg)
{
    loom_stats_t st;
    loom_stats(arg, &st);
    return st.tcp_incoming == 0;
}

int main(void)
{
    test_timeout(110);
    if (access("/usr/bin/python3", X_OK) != 0)
        TEST_SKIP("/usr/bin/python3 missing");
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < N + WARM + 256)
        TEST_SKIP("the fd limit is below 10,500");
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);

    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_http_server_t *srv;
    CHECK_OK(
        loom_http_server(loop, "127.0.0.1", 0, on_request,
                         &(loom_http_server_opts){.tls = sctx,
                                                  .max_connections = N + WARM + 100,
                                                  .backlog = 1024,
                                                  /* opening them all may take longer than the
                                                   * default 60 s idle time on a busy machine */
                                                  .idle_timeout_ms = 600000},
                         &srv));
    loom_tls_ctx_free(sctx);
    char port[16], per[16], warm[16];
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    snprintf(per, sizeof per, "%d", PER);
    snprintf(warm, sizeof warm, "%d", WARM);

    /* A first batch warms OpenSSL's tables, the per-loop blocks and slabs
     * up; the 10,000 after it are measured. */
    tls_proc warmp, p[PROCS];
    char *wargv[] = {
        "/usr/bin/python3", "-c", (char *)py_clients, (char *)tls_path("ca.pem"), port, warm, NULL};
    tls_spawn(&warmp, wargv);
    CHECK(tls_run_pred(loop, all_said_pred, &(all_said){&warmp, 1, "READY"}, 30000));
    CHECK_EQ(served, WARM);
    size_t rss0 = rss();
    size_t heap0 = mallinfo2().uordblks;

    char *argv[] = {
        "/usr/bin/python3", "-c", (char *)py_clients, (char *)tls_path("ca.pem"), port, per, NULL};
    uint64_t t0 = tls_now_ms();
    for (int i = 0; i < PROCS; i++)
        tls_spawn(&p[i], argv);
    if (!tls_run_pred(loop, all_said_pred, &(all_said){p, PROCS, "READY"}, 90000)) {
        fprintf(stderr, "tls idle 10k: only %d of %d answered in 90 s\n", served - WARM, N);
        CHECK(!"every client connection answered");
    }
    uint64_t t1 = tls_now_ms();
    CHECK_EQ(served, WARM + N);
    /* Idle for a while: the last tickets and acknowledgements settle, and
     * nothing may time out or be dropped meanwhile. */
    int none = 0;
    (void)tls_run_until(loop, &none, 1000);
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.tcp_incoming, N + WARM);
    size_t rss1 = rss();
    size_t heap1 = mallinfo2().uordblks;
    long per_rss = ((long)rss1 - (long)rss0) / N;
    long per_heap = ((long)heap1 - (long)heap0) / N;
    printf("tls idle 10k: %d idle keep-alive connections (opened in %llu ms): %ld bytes RSS, "
           "%ld bytes malloc'ed each\n",
           N, (unsigned long long)(t1 - t0), per_rss, per_heap);
#ifndef IDLE_SANITIZED
    CHECK(per_heap < 32 * 1024);
    CHECK(per_rss < 32 * 1024);
#endif

    /* Still keep-alive: a second request on every 25th connection. */
    for (int i = 0; i < PROCS; i++)
        tls_proc_send(&p[i], "PING\n");
    char alive[16];
    snprintf(alive, sizeof alive, "ALIVE %d", PER / 25);
    CHECK(tls_run_pred(loop, all_said_pred, &(all_said){p, PROCS, alive}, 30000));
    CHECK_EQ(served, WARM + N + PROCS * (PER / 25));
    loom_stats(loop, &st);
    CHECK_EQ(st.tcp_incoming, N + WARM);

    /* The clients leave: every connection closes. */
    for (int i = 0; i < PROCS; i++)
        CHECK_EQ(tls_proc_end(&p[i], 30000), 0);
    CHECK_EQ(tls_proc_end(&warmp, 10000), 0);
    CHECK(tls_run_pred(loop, none_open, loop, 30000));
    CHECK_OK(loom_http_server_close(srv, 0, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls idle 10k: ok\n");
    return 0;
}
