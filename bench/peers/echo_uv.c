/* bench/peers/echo_uv.c - an echo server on libuv, written the way a careful
 * libuv user would: reads land in one shared scratch buffer, replies go out
 * with uv_try_write() and only a short write falls back to uv_write() with a
 * copy.
 *
 * Usage: bench-echo-uv --port P
 */
#include <uv.h>

#include "bench.h"

static char scratch[65536];

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(scratch, sizeof scratch);
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    (void)status;
    free(w->buf.base);
    free(w);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0)
        return;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    size_t done = w > 0 ? (size_t)w : 0;
    write_req_t *req = malloc(sizeof *req);
    char *copy = malloc((size_t)n - done);
    if (!req || !copy) {
        free(req);
        free(copy);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    memcpy(copy, buf->base + done, (size_t)n - done);
    req->buf = uv_buf_init(copy, (unsigned)((size_t)n - done));
    uv_write(&req->req, s, &req->buf, 1, on_written);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_close);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    bench_raise_nofile();
    int fd = bench_listen(port, bench_flag(argc, argv, "--reuseport"), 0);
    if (fd < 0)
        return 1;
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    uv_tcp_init(loop, &server);
    if (uv_tcp_open(&server, fd) != 0 || uv_listen((uv_stream_t *)&server, 4096, on_connection)) {
        fprintf(stderr, "echo-uv: cannot listen\n");
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
