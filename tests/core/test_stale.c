/* Use after close: a pointer kept after loom closed the object is caught at
 * the faulty call in checked builds. Freed slab objects are poisoned and
 * quarantined (core/slab.c), so
 *  - a stale loom_socket_write() (the socket closed by loom on EOF) and a
 *    stale loom_timer_stop() (a loom_delay() timer closed after firing) die
 *    in ASan builds with a use-after-poison report naming the call (checked
 *    in a forked child);
 *  - under valgrind (built with LOOM_VALGRIND) the stale object is
 *    no-access;
 *  - in both, a new object never takes the stale one's memory at once (the
 *    quarantine), so a stale call cannot reach the next owner.
 * Release builds have none of this (zero cost): the test checks that the
 * scenario runs clean and exits 77 for the checked part. */
#include <sys/wait.h>

#include "loom_config.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define STALE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STALE_ASAN 1
#endif
#endif
#if !defined(STALE_ASAN) && LOOM_WITH_VALGRIND
#include <valgrind/memcheck.h>
#endif

/* 1 when the build poisons freed objects in this process. */
static int checked(void)
{
#if defined(STALE_ASAN)
    return 1;
#elif LOOM_WITH_VALGRIND
    return RUNNING_ON_VALGRIND != 0;
#else
    return 0;
#endif
}

/* --- A socket that loom closes by itself on EOF ----------------------------- */

static int eofs;

static void srv_on_connect(loom_socket_t *s, void *data)
{
    loom_socket_close(s); /* the client sees EOF */
    loom_tcp_server_close(data);
}

static void cli_on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        eofs++;
}

/* Connects a client to a server that hangs up; runs until both are gone. */
static loom_socket_t *socket_closed_by_loom(loom_loop_t *loop)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_on_connect}, &srv));
    loom_tcp_server_set_data(srv, srv);
    loom_socket_t *s = NULL;
    int before = eofs;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_event = cli_on_event}, &s));
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    CHECK_EQ(eofs, before + 1);
    CHECK_EQ(loom_loop_live(loop), 0);
    return s;
}

/* --- A delay that closes itself after firing -------------------------------- */

static int fired;

static void on_delay(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    fired++;
}

static loom_timer_t *timer_closed_by_loom(loom_loop_t *loop)
{
    loom_timer_t *t = NULL;
    int before = fired;
    CHECK_OK(loom_delay(loop, 1, on_delay, NULL, &t));
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    CHECK_EQ(fired, before + 1);
    CHECK_EQ(loom_loop_live(loop), 0);
    return t;
}

/* --- The stale calls, in a child ---------------------------------------------- */
#if defined(STALE_ASAN)

enum { STALE_WRITE, STALE_STOP };

/* Forks; the child makes the stale call and should die in the sanitizer.
 * Returns what the child wrote to stderr (static buffer); *status is its
 * wait status. */
static const char *stale_call_in_child(int what, void *stale, int *status)
{
    static char out[65536];
    int p[2];
    CHECK(pipe(p) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        int r = what == STALE_WRITE ? loom_socket_write(stale, "stale", 5) : loom_timer_stop(stale);
        fprintf(stderr, "stale call returned %d (not caught)\n", r);
        _exit(0);
    }
    close(p[1]);
    size_t n = 0;
    ssize_t k;
    while (n < sizeof out - 1 && (k = read(p[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = '\0';
    close(p[0]);
    CHECK(waitpid(pid, status, 0) == pid);
    return out;
}

static void expect_caught(int what, void *stale, const char *fn)
{
    int status;
    const char *out = stale_call_in_child(what, stale, &status);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) != 0) && !WIFSIGNALED(status)) {
        fprintf(stderr, "child output:\n%s\n", out);
        CHECK(!"the stale call was not caught");
    }
    if (strstr(out, "use-after-poison") == NULL || strstr(out, fn) == NULL) {
        fprintf(stderr, "child output:\n%s\n", out);
        CHECK(!"no use-after-poison report naming the call");
    }
}

#endif

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();

    loom_socket_t *stale_sock = socket_closed_by_loom(loop);
    loom_timer_t *stale_timer = timer_closed_by_loom(loop);

    if (checked()) {
        /* The next objects of the same kind do not reuse the stale memory. */
        for (int i = 0; i < 3; i++) {
            CHECK(socket_closed_by_loom(loop) != stale_sock);
            CHECK(timer_closed_by_loom(loop) != stale_timer);
        }
    }
#if defined(STALE_ASAN)
    expect_caught(STALE_WRITE, stale_sock, "loom_socket_write");
    expect_caught(STALE_STOP, stale_timer, "loom_timer_stop");
#elif LOOM_WITH_VALGRIND
    if (checked()) {
        char vbits;
        CHECK_EQ(VALGRIND_GET_VBITS(stale_sock, &vbits, 1), 3);
        CHECK_EQ(VALGRIND_GET_VBITS(stale_timer, &vbits, 1), 3);
    }
#endif
    test_loop_free_clean(loop);
    if (!checked())
        TEST_SKIP("freed objects are poisoned only in ASan builds and under valgrind "
                  "(LOOM_VALGRIND); the scenarios ran clean");
    return 0;
}
