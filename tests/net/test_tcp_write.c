/* test_tcp_write: pausing and resuming reads (no data and no read timeout
 * while paused); zero-copy writes and their release; gather writes; high
 * and low water with on_drain; disabled writing; shutdown (half-close);
 * abort releasing queued zero-copy buffers. */
#include <limits.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "test_tcp_util.h"

static loom_tcp_server_t *srv;
static tcp_events sev, cev;

/* --- Phase 1: pause / resume reading ------------------------------------------ */
static loom_socket_t *p_srv_sock;
static size_t p_got;
static int p_resumed;

static void p_srv_connect(loom_socket_t *s, void *data)
{
    p_srv_sock = s;
    CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
}

static void p_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(p_resumed);
    p_got += n;
    if (p_got == 3) {
        CHECK(memcmp(b + n - 1, "c", 1) == 0);
        loom_socket_close(s);
        loom_tcp_server_close(srv);
    }
}

static void p_resume(loom_timer_t *t, void *data)
{
    /* 200 ms paused with a 50 ms read timeout: nothing fired. */
    CHECK_EQ(p_got, 0);
    CHECK_EQ(sev.count[LOOM_EV_TCP_TIMEOUT], 0);
    CHECK(!loom_socket_closed(p_srv_sock));
    p_resumed = 1;
    CHECK_OK(loom_socket_enable(p_srv_sock, LOOM_READABLE));
}

static void count_srv(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &sev);
}

static void count_cli(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &cev);
}

static void phase_pause(loom_loop_t *loop)
{
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = p_srv_connect,
                                                     .on_read = p_srv_read,
                                                     .on_event = count_srv,
                                                     .read_timeout_ms = 50},
                             &srv));
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", loom_tcp_server_port(srv),
        &(loom_tcp_opts){.initial = "abc", .initial_len = 3, .on_event = count_cli}, NULL));
    CHECK_OK(loom_delay(loop, 200, p_resume, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(p_got, 3);
    CHECK_EQ(cev.count[LOOM_EV_TCP_EOF], 1);
    CHECK_EQ(sev.count[LOOM_EV_TCP_TIMEOUT], 0);
}

/* --- Phase 2: zero-copy, gather, water marks, shutdown -------------------------- */
#define ZC (8u << 20)
static char *zc_buf;
static loom_socket_t *w_srv_sock, *w_cli;
static int released, drains, writes_cb, w_srv_eof;
static size_t w_got;
static uint64_t w_sum = TCP_FNV_INIT, w_expect = TCP_FNV_INIT;

static void zc_release(const void *buf, size_t len, void *data)
{
    CHECK(buf == zc_buf);
    CHECK_EQ(len, ZC);
    CHECK(data == &released);
    released++;
}

static void w_srv_connect(loom_socket_t *s, void *data)
{
    w_srv_sock = s;
    CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
}

static void w_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    w_sum = tcp_fnv(w_sum, b, n);
    w_got += n;
}

static void w_srv_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &sev);
    if (ev->kind == LOOM_EV_TCP_EOF)
        w_srv_eof = 1; /* the client's shutdown; loom closes our side now */
}

static void w_cli_drain(loom_socket_t *s, void *data)
{
    drains++;
    CHECK(loom_socket_queued(s) <= 16 * 1024);
}

static void w_cli_write(loom_socket_t *s, void *data)
{
    writes_cb++;
    CHECK_EQ(loom_socket_queued(s), 0);
    if (released == 1 && !w_srv_eof) {
        /* Everything is in the kernel: half-close; reading goes on. */
        CHECK_OK(loom_socket_shutdown(s));
        CHECK_EQ(loom_socket_write(s, "x", 1), LOOM_EPIPE);
    }
}

static void w_start_reading(loom_timer_t *t, void *data);

static void w_cli_connect(loom_socket_t *s, void *data)
{
    /* Writing disabled: a write is queued and not sent. */
    CHECK_OK(loom_socket_disable(s, LOOM_WRITABLE));
    CHECK_EQ(loom_socket_write(s, "head", 4), 0);
    CHECK_EQ(loom_socket_queued(s), 4);
    w_expect = tcp_fnv(w_expect, "head", 4);
    /* Everything below is queued behind it, in order. */
    CHECK_EQ(loom_socket_write_ref(s, zc_buf, ZC, zc_release, &released), 1);
    CHECK_EQ(released, 0);
    w_expect = tcp_fnv(w_expect, zc_buf, ZC);
    struct iovec iov[3] = {{.iov_base = "ga", .iov_len = 2},
                           {.iov_base = "th", .iov_len = 2},
                           {.iov_base = "er", .iov_len = 2}};
    CHECK_EQ(loom_socket_writev(s, iov, 3), 1);
    w_expect = tcp_fnv(w_expect, "gather", 6);
    CHECK_EQ(loom_socket_queued(s), 4 + ZC + 6);
    CHECK_OK(loom_socket_enable(s, LOOM_WRITABLE));
    /* From now on, not from before the connection: on a loaded machine
     * connecting may take longer than the delay. */
    CHECK_OK(loom_delay(loom_socket_loop(s), 150, w_start_reading, NULL, NULL));
}

static void w_start_reading(loom_timer_t *t, void *data)
{
    if (w_srv_sock == NULL) { /* not accepted yet: look again later */
        CHECK_OK(loom_delay(loom_socket_loop(w_cli), 10, w_start_reading, NULL, NULL));
        return;
    }
    CHECK(loom_socket_queued(w_cli) > 64 * 1024); /* the peer is not reading yet */
    CHECK_EQ(drains, 0);
    CHECK_OK(loom_socket_enable(w_srv_sock, LOOM_READABLE));
}

static void w_cli_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &cev);
    if (ev->kind == LOOM_EV_TCP_EOF)
        loom_tcp_server_close(srv);
}

static void phase_write(loom_loop_t *loop)
{
    zc_buf = malloc(ZC);
    for (size_t i = 0; i < ZC; i++)
        zc_buf[i] = (char)tcp_pattern(i);
    memset(&cev, 0, sizeof cev);
    memset(&sev, 0, sizeof sev);
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = w_srv_connect,
                                                     .on_read = w_srv_read,
                                                     .on_event = w_srv_event},
                             &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = w_cli_connect,
                                               .on_write = w_cli_write,
                                               .on_drain = w_cli_drain,
                                               .on_event = w_cli_event,
                                               .high_water = 64 * 1024,
                                               .low_water = 16 * 1024},
                              &w_cli));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(released, 1);
    CHECK_EQ(drains, 1);
    CHECK(writes_cb >= 1);
    CHECK_EQ(w_got, 4 + ZC + 6);
    CHECK_EQ(w_sum, w_expect);
    CHECK(w_srv_eof);
    CHECK_EQ(cev.count[LOOM_EV_TCP_EOF], 1);
    CHECK_EQ(cev.count[LOOM_EV_ERROR], 0);
}

/* --- Phase 3: abort releases what is queued -------------------------------------- */
static int a_released;
static loom_socket_t *a_srv_sock;

static void a_release(const void *buf, size_t len, void *data)
{
    a_released++;
}

static void a_srv_connect(loom_socket_t *s, void *data)
{
    a_srv_sock = s;
    CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
}

static int a_cli_up;

static void a_cli_connect(loom_socket_t *s, void *data)
{
    a_cli_up = 1;
}

static void a_srv_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &sev);
}

static void phase_abort(loom_loop_t *loop)
{
    memset(&sev, 0, sizeof sev);
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = a_srv_connect, .on_event = a_srv_event}, &srv));
    loom_socket_t *c;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = a_cli_connect, .on_event = count_cli},
                              &c));
    while (a_srv_sock == NULL || !a_cli_up)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(loom_socket_write_ref(c, zc_buf, ZC, a_release, NULL), 1);
    CHECK_EQ(loom_socket_write_ref(c, zc_buf, 100, a_release, NULL), 1);
    CHECK_EQ(a_released, 0);
    CHECK_OK(loom_socket_abort(c));
    CHECK_EQ(a_released, 2);
    CHECK(loom_socket_closed(c));
    CHECK_EQ(loom_socket_abort(c), LOOM_ECLOSED);
    /* The peer sees the reset when it reads, and closes. */
    CHECK_OK(loom_socket_enable(a_srv_sock, LOOM_READABLE));
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(a_released, 2);
    CHECK_EQ(sev.count[LOOM_EV_TCP_RESET], 1);
}

/* --- Phase 4: lengths no write can have ------------------------------------------
 * A length (or a sum of iovec lengths) beyond SSIZE_MAX is refused with
 * LOOM_EINVAL, and nothing is queued or released; before, a socket still
 * connecting queued a copy whose size computation wrapped around (a tiny
 * malloc, then a huge memcpy). */
static int l_released;

static void l_release(const void *buf, size_t len, void *data)
{
    l_released++;
}

static void phase_lengths(loom_loop_t *loop)
{
    static char small[16];
    loom_socket_t *c;
    /* Nobody listens: the connect fails later; the writes happen first. */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", 1, &(loom_tcp_opts){.on_event = count_cli}, &c));
    CHECK_EQ(loom_socket_write(c, small, SIZE_MAX), LOOM_EINVAL);
    CHECK_EQ(loom_socket_write(c, small, (size_t)SSIZE_MAX + 1), LOOM_EINVAL);
    struct iovec iov[2] = {{small, SIZE_MAX / 2 + 1}, {small, SIZE_MAX / 2 + 1}};
    CHECK_EQ(loom_socket_writev(c, iov, 2), LOOM_EINVAL); /* the sum wraps to 0 */
    iov[0].iov_len = SIZE_MAX - 4;
    iov[1].iov_len = 8;
    CHECK_EQ(loom_socket_writev(c, iov, 2), LOOM_EINVAL); /* the sum wraps to 3 */
    CHECK_EQ(loom_socket_write_ref(c, small, SIZE_MAX, l_release, NULL), LOOM_EINVAL);
    CHECK_EQ(l_released, 0);
    CHECK_EQ(loom_socket_queued(c), 0);
    CHECK_OK(loom_socket_write(c, small, sizeof small));
    CHECK_EQ(loom_socket_queued(c), sizeof small);
    CHECK_OK(loom_socket_abort(c));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
}

int main(void)
{
    test_timeout(25);
    loom_loop_t *loop = test_loop_new();
    phase_pause(loop);
    phase_write(loop);
    phase_abort(loop);
    phase_lengths(loop);
    free(zc_buf);
    test_loop_free_clean(loop);
    return 0;
}
