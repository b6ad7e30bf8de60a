/* tests/backend/foreign.h - the loom side of the foreign-loop tests
 * (test_uv_foreign, test_event_foreign, test_ev_foreign).
 *
 * fw_start() puts a little of everything on a loom loop that lives on the
 * application's loop: a timer that raises a signal, the signal handler, a
 * DNS lookup of "localhost", a TCP echo server with a client, a post from
 * another thread, and a final timer that ends the work (so the application's
 * loop must stay alive for it). The application's loop is then run by the
 * test the way the application always runs it; when it returns on its own,
 * every step must be done and loom must have no live object left.
 */
#ifndef LOOM_TEST_FOREIGN_H
#define LOOM_TEST_FOREIGN_H

#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "test.h"

#define FW_END_MS 150 /* the last timer: outlives the application's own work */

typedef struct fw {
    loom_loop_t *loop;
    loom_tcp_server_t *srv;
    loom_http_server_t *http;
    pthread_t poster;
    int timer_fired, signal_seen, dns_ok, echo_ok, srv_eof, http_ok, posted, ended;
    uint64_t start_ms, end_ms;
    char echo[16];
    size_t echo_len;
} fw_t;

static fw_t *fw_cur;

static uint64_t fw_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void fw_on_signal(loom_signal_t *sig, int signo, void *data)
{
    fw_t *w = data;
    CHECK_EQ(signo, SIGUSR1);
    w->signal_seen++;
    loom_signal_free(sig);
}

static void fw_on_timer(loom_timer_t *t, void *data)
{
    fw_t *w = data;
    w->timer_fired++;
    raise(SIGUSR1);
    (void)t;
}

static void fw_on_dns(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    fw_t *w = data;
    CHECK(res->count >= 1);
    w->dns_ok = 1;
    (void)q;
}

static void fw_on_event(const loom_event_t *ev, void *data)
{
    fw_t *w = data;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        w->srv_eof++;
        return;
    }
    fprintf(stderr, "unexpected event %d: %s (%s)\n", (int)ev->kind, ev->msg ? ev->msg : "",
            loom_err_name(ev->code));
    exit(1);
}

static void fw_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(loom_socket_write(s, b, n) >= 0);
    (void)data;
}

static void fw_cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    fw_t *w = data;
    CHECK(w->echo_len + n <= sizeof w->echo);
    memcpy(w->echo + w->echo_len, b, n);
    w->echo_len += n;
    if (w->echo_len == 5) {
        CHECK(memcmp(w->echo, "hello", 5) == 0);
        w->echo_ok = 1;
        loom_socket_close(s);
    }
}

static void fw_on_http_req(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_OK(loom_http_respond(req, 200, (const char *const[]){"Content-Type", "text/plain", NULL},
                               "hi", 2));
}

static void fw_on_http_res(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                           void *data)
{
    fw_t *w = data;
    (void)req;
    CHECK_EQ(res->status, 200);
    CHECK(res->body_len == 2 && memcmp(res->body, "hi", 2) == 0);
    w->http_ok = 1;
}

static void fw_on_end(loom_timer_t *t, void *data)
{
    fw_t *w = data;
    if (!(w->timer_fired && w->signal_seen && w->dns_ok && w->echo_ok && w->srv_eof && w->http_ok &&
          w->posted)) {
        /* A slow run (valgrind): give the rest time before closing. */
        CHECK_OK(loom_delay(w->loop, 20, fw_on_end, w, NULL));
        return;
    }
    w->ended = 1;
    w->end_ms = fw_clock_ms();
    loom_tcp_server_close(w->srv);
    w->srv = NULL;
    CHECK_OK(loom_http_server_close(w->http, 0, NULL));
    w->http = NULL;
    (void)t;
}

static void fw_on_post(void *data)
{
    ((fw_t *)data)->posted++;
}

static void *fw_poster(void *data)
{
    fw_t *w = data;
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    CHECK_OK(loom_post(w->loop, fw_on_post, w));
    return NULL;
}

/* Starts the loom work. Called from outside the application's loop, or
 * from one of its callbacks. */
static void fw_start(fw_t *w, loom_loop_t *loop)
{
    memset(w, 0, sizeof *w);
    fw_cur = w;
    w->loop = loop;
    w->start_ms = fw_clock_ms();
    loom_update_time(loop); /* loom's clock is cached, like libuv's */
    CHECK_OK(loom_delay(loop, 20, fw_on_timer, w, NULL));
    CHECK_OK(loom_signal_handler(loop, SIGUSR1, fw_on_signal, w, NULL));
    CHECK_OK(loom_dns_lookup(loop, "localhost", LOOM_DNS_UNSPEC, fw_on_dns,
                             &(loom_dns_opts){.data = w}, NULL));
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_read = fw_srv_read, .on_event = fw_on_event, .data = w},
        &w->srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(w->srv),
                              &(loom_tcp_opts){.initial = "hello",
                                               .initial_len = 5,
                                               .on_read = fw_cli_read,
                                               .on_event = fw_on_event,
                                               .data = w},
                              NULL));
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, fw_on_http_req,
                              &(loom_http_server_opts){.data = w, .on_event = fw_on_event},
                              &w->http));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", loom_http_server_port(w->http));
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){.on_response = fw_on_http_res,
                                                         .on_event = fw_on_event,
                                                         .data = w,
                                                         .no_keepalive = true},
                               NULL));
    CHECK_OK(loom_delay(loop, FW_END_MS, fw_on_end, w, NULL));
    CHECK(pthread_create(&w->poster, NULL, fw_poster, w) == 0);
}

/* Checks that the work is complete after the application's loop returned
 * on its own, and that it did not return before loom's last timer. */
static void fw_check_done(fw_t *w)
{
    CHECK(pthread_join(w->poster, NULL) == 0);
    CHECK_EQ(w->timer_fired, 1);
    CHECK_EQ(w->signal_seen, 1);
    CHECK_EQ(w->dns_ok, 1);
    CHECK_EQ(w->echo_ok, 1);
    CHECK_EQ(w->srv_eof, 1);
    CHECK_EQ(w->http_ok, 1);
    CHECK_EQ(w->posted, 1);
    CHECK_EQ(w->ended, 1);
    CHECK(w->end_ms - w->start_ms >= FW_END_MS - 1);
    CHECK_EQ(loom_loop_live(w->loop), 0);
}

#endif
