/* bench/peers/http_uv.c - an HTTP/1.1 server on libuv with a minimal request
 * head scanner of its own (request line, Content-Length, Connection). It is
 * what a careful libuv user would write: reads land in one shared scratch
 * buffer, a connection keeps memory only while it holds a partial request,
 * and the answers to one read go out in one uv_try_write() (uv_write() with a
 * copy only for what did not fit).
 *
 * Usage: bench-http-uv --port P [--reuseport]
 */
#include <strings.h>
#include <uv.h>

#include "bench.h"

static const char response[] = BENCH_HTTP_RESPONSE;
#define RESPONSE_LEN (sizeof response - 1)
#define MAX_HEAD     8192

static char scratch[65536];
static char out[64 * 1024];

typedef struct {
    uv_tcp_t tcp;
    char *partial; /* the start of an incomplete request, or NULL */
    size_t plen, pcap;
    size_t body_left; /* body bytes still to skip */
    int closing;
} conn_t;

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    conn_t *conn;
} write_req_t;

static void on_close(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    free(c->partial);
    free(c);
}

static void conn_close(conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = (conn_t *)h;
    (void)suggested;
    if (c->plen == 0) {
        *buf = uv_buf_init(scratch, sizeof scratch);
        return;
    }
    /* A partial request: read the rest right behind it. */
    if (c->pcap - c->plen < 4096) {
        size_t cap = c->pcap * 2 < c->plen + 4096 ? c->plen + 4096 : c->pcap * 2;
        char *p = realloc(c->partial, cap);
        if (!p) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->partial = p;
        c->pcap = cap;
    }
    *buf = uv_buf_init(c->partial + c->plen, (unsigned)(c->pcap - c->plen));
}

static void on_written(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    if (status < 0 || w->conn->closing)
        conn_close(w->conn);
    free(w->buf.base);
    free(w);
}

static int conn_write(conn_t *c, const char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        if (c->closing)
            conn_close(c);
        return 0;
    }
    if (n < 0 && n != UV_EAGAIN)
        return -1;
    size_t done = n > 0 ? (size_t)n : 0;
    write_req_t *w = malloc(sizeof *w);
    char *copy = malloc(len - done);
    if (!w || !copy) {
        free(w);
        free(copy);
        return -1;
    }
    memcpy(copy, buf + done, len - done);
    w->buf = uv_buf_init(copy, (unsigned)(len - done));
    w->conn = c;
    return uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written);
}

/* Scans one request head in p[0..n) (which ends with CRLFCRLF). Sets the body
 * length and whether the connection closes after the answer. Returns 0, or -1
 * for a head that is not HTTP/1.x. */
static int scan_head(const char *p, size_t n, size_t *body, int *close_after)
{
    const char *end = p + n, *sp = memchr(p, ' ', n);
    const char *eol = memchr(p, '\n', n);
    if (!sp || !eol || eol - p < 14 || memcmp(eol - 10, " HTTP/1.", 8) != 0)
        return -1;
    *body = 0;
    *close_after = eol[-2] == '0'; /* HTTP/1.0 closes unless keep-alive */
    for (const char *h = eol + 1; h < end && *h != '\r';) {
        const char *nl = memchr(h, '\n', (size_t)(end - h));
        if (!nl)
            break;
        size_t len = (size_t)(nl - h);
        if (len > 15 && strncasecmp(h, "content-length:", 15) == 0)
            *body = strtoul(h + 15, NULL, 10);
        else if (len > 11 && strncasecmp(h, "connection:", 11) == 0) {
            const char *v = h + 11;
            while (*v == ' ')
                v++;
            if (strncasecmp(v, "close", 5) == 0)
                *close_after = 1;
            else if (strncasecmp(v, "keep-alive", 10) == 0)
                *close_after = 0;
        }
        h = nl + 1;
    }
    return 0;
}

/* Handles every complete request in buf[0..n); returns how many bytes were
 * consumed, or -1 to drop the connection. */
static long handle(conn_t *c, const char *buf, size_t n)
{
    size_t pos = 0, olen = 0;
    while (pos < n && !c->closing) {
        if (c->body_left) {
            size_t k = n - pos < c->body_left ? n - pos : c->body_left;
            pos += k;
            c->body_left -= k;
            continue;
        }
        const char *e = memmem(buf + pos, n - pos, "\r\n\r\n", 4);
        if (!e)
            break;
        size_t hlen = (size_t)(e + 4 - (buf + pos));
        size_t body;
        int close_after;
        if (scan_head(buf + pos, hlen, &body, &close_after) != 0)
            return -1;
        pos += hlen;
        c->body_left = body;
        c->closing = close_after;
        if (olen + RESPONSE_LEN > sizeof out) {
            if (conn_write(c, out, olen) != 0)
                return -1;
            olen = 0;
        }
        memcpy(out + olen, response, RESPONSE_LEN);
        olen += RESPONSE_LEN;
    }
    if (olen > 0 && conn_write(c, out, olen) != 0)
        return -1;
    return (long)pos;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = (conn_t *)s;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    const char *data;
    size_t n;
    if (c->plen > 0) {
        c->plen += (size_t)nread;
        data = c->partial;
        n = c->plen;
    } else {
        data = buf->base;
        n = (size_t)nread;
    }
    long used = handle(c, data, n);
    if (used < 0) {
        conn_close(c);
        return;
    }
    size_t rest = n - (size_t)used;
    if (rest > MAX_HEAD) {
        conn_close(c);
        return;
    }
    if (rest == 0) {
        /* Nothing pending: give the memory back. */
        free(c->partial);
        c->partial = NULL;
        c->plen = c->pcap = 0;
        return;
    }
    if (data == c->partial) {
        memmove(c->partial, c->partial + used, rest);
    } else {
        char *p = malloc(rest + 4096);
        if (!p) {
            conn_close(c);
            return;
        }
        memcpy(p, data + used, rest);
        c->partial = p;
        c->pcap = rest + 4096;
    }
    c->plen = rest;
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
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
        fprintf(stderr, "http-uv: cannot listen\n");
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
