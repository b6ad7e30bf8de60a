/* test_http_server_threads: opts.threads = 2 runs two loops on two threads
 * on one port (SO_REUSEPORT); connections land on both, on_request runs on
 * the thread that owns the connection, on_thread runs once per extra
 * thread, and loom_http_server_close() on the caller's server stops both.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h): every extra
 * thread's server serves h2c as well. */
#include "test_http_server_util.h"

static pthread_t main_thread;
static atomic_int on_main, on_other, thread_calls, thread_loop_ok;

static void on_request(loom_http_req_t *req, void *data)
{
    CHECK(data == (void *)&main_thread);
    HV_CHECK_REQ(req);
    if (pthread_equal(pthread_self(), main_thread))
        atomic_fetch_add(&on_main, 1);
    else
        atomic_fetch_add(&on_other, 1);
    char body[32];
    snprintf(body, sizeof body, "%s",
             pthread_equal(pthread_self(), main_thread) ? "main" : "other");
    hs_reply(req, body);
}

static void on_thread(loom_loop_t *loop, unsigned index, void *data)
{
    CHECK(data == (void *)&main_thread);
    CHECK_EQ(index, 1);
    CHECK(!pthread_equal(pthread_self(), main_thread));
    if (loop != NULL && loom_loop_live(loop) >= 1)
        atomic_store(&thread_loop_ok, 1);
    atomic_fetch_add(&thread_calls, 1);
}

int main(void)
{
    test_timeout(30);
    main_thread = pthread_self();
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.threads = 2, .on_thread = on_thread, .data = &main_thread};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, hv_server_opts(&o), &srv));
    int port = loom_http_server_port(srv);
    CHECK(port > 0);
    CHECK_EQ(atomic_load(&thread_calls), 1);
    CHECK(atomic_load(&thread_loop_ok));

    /* Many short connections: the kernel spreads them over both listeners. */
    for (int i = 0; i < 60; i++) {
        hs_raw c;
        hs_raw_exchange(loop, &c, port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                        1);
        CHECK_EQ(c.nresp, 1);
        hs_raw_free(&c);
    }
    fprintf(stderr, "main thread served %d, the other %d\n", atomic_load(&on_main),
            atomic_load(&on_other));
    CHECK_EQ(atomic_load(&on_main) + atomic_load(&on_other), 60);
    CHECK(atomic_load(&on_main) > 0);
    CHECK(atomic_load(&on_other) > 0);

    /* Closing the caller's server closes both; afterwards nothing listens. */
    hs_close_server(loop, srv);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);

    /* Freeing a loop whose server still runs its threads stops them too. */
    loom_loop_t *loop2 = test_loop_new();
    CHECK_OK(loom_http_server(loop2, "127.0.0.1", 0, on_request, &o, &srv));
    hs_raw c;
    hs_raw_exchange(loop2, &c, loom_http_server_port(srv), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    hs_raw_free(&c);
    loom_loop_free(loop2);

    test_loop_free_clean(loop);
    return 0;
}
