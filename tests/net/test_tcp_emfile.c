/* test_tcp_emfile: running out of descriptors while accepting. The test
 * lowers RLIMIT_NOFILE so the server can accept only a few of 40 waiting
 * connections; it must report tcp accept error events (object: the
 * server, its message naming the server's port and the reason), not spin (a bounded number of
 * events and loop iterations over 500 ms), keep serving the connections it has, and accept the rest
 * by itself once descriptors are available again. Then the same with a server that has no event
 * handler on a loop without a default: the accept errors are log lines, and loom_run() goes on.
 * LOOM_TEST_SERIAL. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>

#include "test_tcp_util.h"

#define CLIENTS 40

static loom_loop_t *loop;
static loom_tcp_server_t *srv;
static int accepted, accept_errors, closed;
static int raw[CLIENTS];

static void srv_connect(loom_socket_t *s, void *data)
{
    accepted++;
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    if (ev->kind == LOOM_EV_TCP_ACCEPT_ERROR) {
        CHECK(ev->object == srv);
        CHECK(data == &accepted);
        CHECK(ev->code == LOOM_EMFILE || ev->code == LOOM_ENFILE);
        /* The message names the server and the reason, as the log line does. */
        char want[64];
        snprintf(want, sizeof want,
                 "tcp server on port %d: accept failed: ", loom_tcp_server_port(srv));
        CHECK(strstr(ev->msg, want) != NULL);
        CHECK(strstr(ev->msg, loom_strerror(ev->code)) != NULL);
        accept_errors++;
        return;
    }
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    if (++closed == CLIENTS)
        loom_tcp_server_close(srv);
}

static int max_fd(void)
{
    int m = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (fd > m)
            m = fd;
    }
    closedir(d);
    return m;
}

static void on_elapsed(loom_timer_t *t, void *data)
{
    *(int *)data = 1;
}

/* Runs the loop for `ms`: a timer bounds the wait of each iteration. */
static void run_for(unsigned ms)
{
    int elapsed = 0;
    CHECK_OK(loom_delay(loop, ms, on_elapsed, &elapsed, NULL));
    while (!elapsed)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
}

static int warnings;

static void on_log(int level, const char *msg, void *data)
{
    if (level == LOOM_LOG_WARNING && strstr(msg, "accept failed") != NULL)
        warnings++;
}

static void phase(bool handlers)
{
    accepted = accept_errors = closed = warnings = 0;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log}));
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_event = handlers ? srv_event : NULL,
                                                     .backlog = 128,
                                                     .data = &accepted},
                             &srv));
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < CLIENTS; i++) {
        raw[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(raw[i] >= 0);
        CHECK(connect(raw[i], (struct sockaddr *)&in, sizeof in) == 0); /* in the backlog */
    }
    /* Exactly five free descriptors: lower the limit, fill every hole below
     * it, then give five back. */
    struct rlimit saved, low;
    CHECK(getrlimit(RLIMIT_NOFILE, &saved) == 0);
    low = saved;
    low.rlim_cur = (rlim_t)max_fd() + 16;
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    static int filler[4096];
    int nfill = 0, fd;
    while (nfill < 4096 && (fd = dup(0)) >= 0)
        filler[nfill++] = fd;
    CHECK(errno == EMFILE);
    CHECK(nfill >= 5);
    for (int i = 0; i < 5; i++)
        close(filler[--nfill]);

    run_for(100);
    CHECK(accepted >= 1);
    CHECK(accepted < CLIENTS);
    CHECK((handlers ? accept_errors : warnings) >= 1);

    /* 500 ms out of descriptors: a few events (one per 100 ms retry) and
     * few iterations, not a spin. */
    loom_stats_t st0, st1;
    loom_stats(loop, &st0);
    int errors0 = accept_errors;
    /* An accepted connection is still served meanwhile. */
    CHECK(write(raw[0], "ping", 4) == 4);
    run_for(500);
    loom_stats(loop, &st1);
    CHECK(accept_errors - errors0 <= 8);
    CHECK(warnings <= 10);
    CHECK(st1.iterations - st0.iterations <= 60);
    char buf[8];
    CHECK(fcntl(raw[0], F_SETFL, O_NONBLOCK) == 0);
    CHECK_EQ(read(raw[0], buf, sizeof buf), 4);
    CHECK(memcmp(buf, "ping", 4) == 0);

    /* Descriptors free up: the server recovers by itself. */
    while (nfill > 0)
        close(filler[--nfill]);
    CHECK(setrlimit(RLIMIT_NOFILE, &saved) == 0);
    int errors1 = accept_errors;
    run_for(400);
    CHECK_EQ(accepted, CLIENTS);
    CHECK_EQ(accept_errors, errors1);

    for (int i = 0; i < CLIENTS; i++)
        close(raw[i]);
    if (!handlers) {
        /* The eofs are log lines too; the server is closed by hand. */
        for (int i = 0; i < 100000 && st1.tcp_incoming > 0; i++) {
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
            loom_stats(loop, &st1);
        }
        loom_tcp_server_close(srv);
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(closed, handlers ? CLIENTS : 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    phase(true);
    phase(false);
    return 0;
}
