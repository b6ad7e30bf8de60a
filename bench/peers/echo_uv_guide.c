/* bench/peers/echo_uv_guide.c - an echo server on libuv written as libuv's
 * user guide writes its echo server: alloc_cb mallocs the suggested size for
 * each read, and each reply is a uv_write() whose request and buffer are
 * freed in its callback. This is the pattern most libuv code follows; the
 * tuned variant (bench-echo-uv: one scratch buffer and uv_try_write()) is
 * measured beside it so that both readings are visible.
 *
 * Usage: bench-echo-uv-guide --port P
 */
#include <uv.h>

#include "bench.h"

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} write_req_t;

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void alloc_buffer(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void echo_write(uv_write_t *req, int status)
{
    (void)status;
    write_req_t *w = (write_req_t *)req;
    free(w->buf.base);
    free(w);
}

static void echo_read(uv_stream_t *client, ssize_t nread, const uv_buf_t *buf)
{
    if (nread > 0) {
        write_req_t *req = malloc(sizeof *req);
        if (req == NULL) {
            free(buf->base);
            uv_close((uv_handle_t *)client, on_close);
            return;
        }
        req->buf = uv_buf_init(buf->base, (unsigned)nread);
        uv_write(&req->req, client, &req->buf, 1, echo_write);
        return;
    }
    if (nread < 0)
        uv_close((uv_handle_t *)client, on_close);
    free(buf->base);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *client = malloc(sizeof *client);
    if (client == NULL)
        return;
    uv_tcp_init(server->loop, client);
    if (uv_accept(server, (uv_stream_t *)client) == 0) {
        uv_tcp_nodelay(client, 1);
        uv_read_start((uv_stream_t *)client, alloc_buffer, echo_read);
    } else {
        uv_close((uv_handle_t *)client, on_close);
    }
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
        fprintf(stderr, "echo-uv-guide: cannot listen\n");
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
