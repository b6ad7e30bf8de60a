/* test_tcp_many: 10,000 concurrent connections through one loop. The
 * server runs here; the clients run in a child process with a loop of their
 * own (20,000 fds in one process would pass the hard limit). Every client
 * sends a byte, gets it echoed, and holds its connection until all 10,000
 * are up; then they all close. LOOM_TEST_SERIAL: heavy, runs alone. */
#include <sys/resource.h>
#include <sys/wait.h>

#include "test_tcp_util.h"

#define CONNS    10000
#define INFLIGHT 512

static void raise_nofile(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < CONNS + 100)
        TEST_SKIP("RLIMIT_NOFILE hard limit %lu is below %d", (unsigned long)rl.rlim_max,
                  CONNS + 100);
}

/* --- Server (parent) ---------------------------------------------------------------- */
static loom_tcp_server_t *srv;
static uint64_t peak, closed;
static loom_loop_t *sloop;

static void srv_connect(loom_socket_t *s, void *data)
{
    loom_stats_t st;
    loom_stats(sloop, &st);
    if (st.tcp_incoming > peak)
        peak = st.tcp_incoming;
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    if (++closed == CONNS)
        loom_tcp_server_close(srv);
}

/* --- Clients (child) ---------------------------------------------------------------- */
static loom_loop_t *cloop;
static int port, started, echoed, errors;
static loom_socket_t **socks;

static void cli_connect(loom_socket_t *s, void *data);
static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data);
static void cli_event(const loom_event_t *ev, void *data)
{
    fprintf(stderr, "client event: %s (%s)\n", loom_event_kind_name(ev->kind), ev->msg);
    errors++;
}

static void start_one(void)
{
    if (started == CONNS)
        return;
    CHECK_OK(loom_tcp_connect(cloop, "127.0.0.1", port,
                              &(loom_tcp_opts){.on_connect = cli_connect,
                                               .on_read = cli_read,
                                               .on_event = cli_event,
                                               .data = (void *)(intptr_t)started},
                              &socks[started]));
    started++;
}

static void cli_connect(loom_socket_t *s, void *data)
{
    CHECK_EQ(loom_socket_write(s, "e", 1), 0);
    start_one();
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK_EQ(n, 1);
    if (++echoed < CONNS)
        return;
    /* All 10,000 are open at once: now close them all. */
    loom_stats_t st;
    loom_stats(cloop, &st);
    CHECK_EQ(st.tcp_outgoing, CONNS);
    for (int i = 0; i < CONNS; i++)
        CHECK_OK(loom_socket_close(socks[i]));
}

static void child(void)
{
    socks = calloc(CONNS, sizeof *socks);
    CHECK_OK(loom_loop_new(&cloop, NULL));
    for (int i = 0; i < INFLIGHT; i++)
        start_one();
    CHECK_EQ(loom_run(cloop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(errors, 0);
    CHECK_EQ(echoed, CONNS);
    test_loop_free_clean(cloop);
    free(socks);
    _exit(0);
}

int main(void)
{
    test_timeout(60);
    raise_nofile();
    sloop = test_loop_new();
    CHECK_OK(loom_tcp_server(
        sloop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){
            .on_connect = srv_connect, .on_read = srv_read, .on_event = srv_event, .backlog = 4096},
        &srv));
    port = loom_tcp_server_port(srv);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        child();
    CHECK_EQ(loom_run(sloop, LOOM_RUN_DEFAULT), 0);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(peak, CONNS);
    CHECK_EQ(closed, CONNS);
    loom_stats_t st;
    loom_stats(sloop, &st);
    CHECK_EQ(st.tcp_incoming, 0);
    CHECK_EQ(st.tcp_incoming_total, CONNS);
    test_loop_free_clean(sloop);
    return 0;
}
