/* bench/ws/ws_load.c - the WebSocket load generator, the same for every
 * server (bench/ws/README.md): one epoll loop, the client handshake written
 * by hand, masked frames, permessage-deflate through zlib directly.
 *
 * Usage: bench-ws-load --port P --mode echo|deflate|bcast|idle [--conns N]
 *        [--size S] [--duration D] [--warmup W] [--rounds R] [--deflate]
 *        [--pids PID[,PID...]] [--src-net K]
 *   echo     N connections (100), S-byte binary messages (64), one in flight
 *            each, counted for D seconds after a warm-up of W
 *   deflate  the same with S-byte text messages (16384), permessage-deflate
 *            offered and required (N 10)
 *   bcast    N subscribers (10000) + one trigger connection; R broadcasts of a
 *            64-byte payload, one at a time, each until every subscriber has it
 *   idle     N connections (10000), each after its handshake and one 64 B
 *            echo (compressed with --deflate); server RSS growth / N
 * Prints one JSON object on stdout (see the end of main), or {"error":...}.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <zlib.h>

#include "bench.h"
#include "ws_common.h"

enum { MODE_ECHO, MODE_DEFLATE, MODE_BCAST, MODE_IDLE };

typedef struct {
    int fd;
    int upgraded;
    int ready;   /* handshake done and the mode's set-up answered */
    uint8_t *in; /* unparsed bytes kept between reads */
    size_t inlen;
    uint8_t *msg; /* a fragmented message being put together */
    size_t msglen, msgcap;
    int msgop, msgrsv1;
    uint8_t *pend; /* bytes not sent yet */
    size_t plen;
    int deflate;          /* permessage-deflate negotiated */
    int srv_nct, cli_nct; /* server_ / client_no_context_takeover */
    z_stream zd, zi;
    size_t sent_off; /* corpus offset of the message in flight */
    long last_round; /* bcast: the last round received */
} conn_t;

static int ep, mode, port, src_net;
static unsigned src_turn;
static long nconns;
static size_t size;
static conn_t *conns;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static char *corpus;
static size_t corpus_len;
static uint8_t scratch[1u << 18];
static uint8_t *outbuf, *inflbuf;
static size_t outcap, inflcap;
static const char *pids;
static int want_deflate;
/* counters */
static uint64_t msgs, bytes, bcast_got;
static uint64_t wire_bytes; /* payload bytes received as sent (compressed or not) */
static long round_now = -1;
static int failed;
static char why[256];

#define KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void fail(const char *fmt, const char *arg)
{
    if (!failed)
        snprintf(why, sizeof why, fmt, arg);
    failed = 1;
}

static long rss_bytes(void)
{
    if (!pids)
        return -1;
    long total = 0;
    const char *p = pids;
    while (p && *p) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%ld/status", strtol(p, NULL, 10));
        FILE *f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof line, f))
                if (strncmp(line, "VmRSS:", 6) == 0)
                    total += strtol(line + 6, NULL, 10) * 1024;
            fclose(f);
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return total;
}

static void conn_want_out(conn_t *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0),
                             .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_send_raw(conn_t *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    if (c->plen == 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) {
            fail("send: %s", strerror(errno));
            return;
        }
        done = n < 0 ? 0 : (size_t)n;
    }
    if (done < len) {
        c->pend = realloc(c->pend, c->plen + len - done);
        memcpy(c->pend + c->plen, p + done, len - done);
        c->plen += len - done;
        conn_want_out(c, 1);
    }
}

static void conn_flush(conn_t *c)
{
    ssize_t n = send(c->fd, c->pend, c->plen, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN)
            fail("send: %s", strerror(errno));
        return;
    }
    memmove(c->pend, c->pend + n, c->plen - (size_t)n);
    c->plen -= (size_t)n;
    if (c->plen == 0) {
        free(c->pend);
        c->pend = NULL;
        conn_want_out(c, 0);
    }
}

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need > *cap) {
        *cap = need * 2;
        *buf = realloc(*buf, *cap);
    }
}

/* Sends one masked message, compressed when negotiated and asked. */
static void conn_send_msg(conn_t *c, int opcode, const void *data, size_t len, int compress)
{
    const uint8_t *p = data;
    int rsv1 = 0;
    if (compress && c->deflate) {
        if (c->cli_nct)
            deflateReset(&c->zd);
        grow(&inflbuf, &inflcap, deflateBound(&c->zd, len) + 16);
        c->zd.next_in = (Bytef *)p;
        c->zd.avail_in = (uInt)len;
        c->zd.next_out = inflbuf;
        c->zd.avail_out = (uInt)inflcap;
        if (deflate(&c->zd, Z_SYNC_FLUSH) != Z_OK || c->zd.avail_in) {
            fail("deflate failed%s", "");
            return;
        }
        len = inflcap - c->zd.avail_out;
        if (len >= 4)
            len -= 4; /* the 00 00 ff ff tail */
        p = inflbuf;
        rsv1 = 1;
    }
    uint8_t mask[4];
    uint64_t r = bench_rand(&rng);
    memcpy(mask, &r, 4);
    grow(&outbuf, &outcap, len + 14);
    size_t h = ws_frame_header(outbuf, opcode, rsv1, len, mask);
    memcpy(outbuf + h, p, len);
    ws_mask(outbuf + h, len, mask, 0);
    conn_send_raw(c, outbuf, h + len);
}

static void send_next(conn_t *c)
{
    if (mode == MODE_DEFLATE) {
        c->sent_off = (size_t)(bench_rand(&rng) % (corpus_len - size));
        conn_send_msg(c, 1, corpus + c->sent_off, size, 1);
    } else {
        conn_send_msg(c, 2, corpus, size, 1);
    }
}

static void on_message(conn_t *c, int op, uint8_t *p, size_t len, int rsv1)
{
    size_t wire = len;
    if (rsv1) {
        if (!c->deflate) {
            fail("RSV1 without permessage-deflate%s", "");
            return;
        }
        if (c->srv_nct)
            inflateReset(&c->zi);
        grow(&c->msg, &c->msgcap, len + 4);
        if (p != c->msg)
            memcpy(c->msg, p, len);
        memcpy(c->msg + len, "\x00\x00\xff\xff", 4);
        c->zi.next_in = c->msg;
        c->zi.avail_in = (uInt)(len + 4);
        size_t out = 0;
        for (;;) {
            grow(&inflbuf, &inflcap, out + 65536);
            c->zi.next_out = inflbuf + out;
            c->zi.avail_out = (uInt)(inflcap - out);
            int rc = inflate(&c->zi, Z_SYNC_FLUSH);
            out = inflcap - c->zi.avail_out;
            if (rc == Z_STREAM_END) {
                inflateReset(&c->zi);
                break;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                fail("inflate failed%s", "");
                return;
            }
            if (c->zi.avail_in == 0 && c->zi.avail_out > 0)
                break;
        }
        p = inflbuf;
        len = out;
    }
    if (!c->ready) {
        if (op == 1 && len == 10 && memcmp(p, "subscribed", 10) == 0)
            c->ready = 1;
        else if (mode == MODE_IDLE && len == size)
            c->ready = 1;
        else
            fail("unexpected answer to the set-up message%s", "");
        return;
    }
    if (mode == MODE_BCAST) {
        long r = p && len >= 8 ? strtol((const char *)p + 1, NULL, 10) : -1;
        if (len != 64 || r != round_now || r == c->last_round) {
            char d[160];
            snprintf(d, sizeof d, "len %zu round %ld/%ld/%ld conn %ld: %.40s", len, r, round_now,
                     c->last_round, (long)(c - conns), p ? (const char *)p : "");
            fail("unexpected broadcast message: %s", d);
            return;
        }
        c->last_round = r;
        bcast_got++;
        return;
    }
    if (len != size || (mode == MODE_DEFLATE && memcmp(p, corpus + c->sent_off, len) != 0)) {
        fail("echo differs from the message sent%s", "");
        return;
    }
    msgs++;
    bytes += len;
    wire_bytes += wire;
    send_next(c);
}

/* Parses complete frames; returns the bytes consumed. */
static size_t on_frames(conn_t *c, uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len && !failed) {
        ws_hdr_t h;
        size_t hl = ws_frame_parse(buf + off, len - off, &h);
        if (hl == 0 || len - off - hl < h.len)
            break;
        if (h.masked) {
            fail("masked frame from the server%s", "");
            break;
        }
        uint8_t *p = buf + off + hl;
        off += hl + h.len;
        if (h.opcode >= 8) {
            if (h.opcode == 9)
                conn_send_msg(c, 10, p, (size_t)h.len, 0);
            else if (h.opcode == 8)
                fail("the server closed a connection%s", "");
            continue;
        }
        if (h.opcode != 0) {
            c->msgop = h.opcode;
            c->msgrsv1 = h.rsv1;
            c->msglen = 0;
        }
        if (h.fin && c->msglen == 0) {
            on_message(c, c->msgop, p, (size_t)h.len, c->msgrsv1);
        } else {
            grow(&c->msg, &c->msgcap, c->msglen + h.len + 4);
            memcpy(c->msg + c->msglen, p, h.len);
            c->msglen += h.len;
            if (h.fin) {
                size_t l = c->msglen;
                c->msglen = 0;
                on_message(c, c->msgop, c->msg, l, c->msgrsv1);
            }
        }
    }
    return off;
}

static size_t on_handshake(conn_t *c, uint8_t *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return 0;
    size_t hlen = (size_t)(end - (char *)buf) + 4;
    if (len < 12 || memcmp(buf + 9, "101", 3) != 0) {
        fail("no 101 from the server: %.60s", (char *)buf);
        return hlen;
    }
    size_t vl;
    const char *v = ws_header((char *)buf, hlen, "Sec-WebSocket-Accept", &vl);
    if (!v || vl != 28 || memcmp(v, ACCEPT, 28) != 0) {
        fail("wrong Sec-WebSocket-Accept%s", "");
        return hlen;
    }
    c->upgraded = 1;
    v = ws_header((char *)buf, hlen, "Sec-WebSocket-Extensions", &vl);
    if (v && vl >= 18 && strncasecmp(v, "permessage-deflate", 18) == 0) {
        char ext[256];
        snprintf(ext, sizeof ext, "%.*s", (int)vl, v);
        c->deflate = 1;
        if (getenv("BENCH_WS_DEBUG"))
            fprintf(stderr, "extension: %s\n", ext);
        c->srv_nct = strstr(ext, "server_no_context_takeover") != NULL;
        c->cli_nct = strstr(ext, "client_no_context_takeover") != NULL;
        int wbits = 15;
        const char *w = strstr(ext, "client_max_window_bits=");
        if (w)
            wbits = atoi(w + 23);
        if (wbits < 9)
            wbits = 9;
        if (deflateInit2(&c->zd, 1, Z_DEFLATED, -wbits, 8, Z_DEFAULT_STRATEGY) != Z_OK ||
            inflateInit2(&c->zi, -15) != Z_OK)
            fail("zlib init failed%s", "");
    } else if (want_deflate) {
        fail("permessage-deflate was not accepted%s", "");
    }
    /* The mode's set-up message. */
    if (mode == MODE_BCAST && c == &conns[nconns])
        c->ready = 1; /* the trigger: not subscribed */
    else if (mode == MODE_BCAST)
        conn_send_msg(c, 1, "subscribe", 9, 0);
    else if (mode == MODE_IDLE)
        conn_send_msg(c, 2, corpus, size, 1);
    else
        c->ready = 1;
    return hlen;
}

static void on_readable(conn_t *c)
{
    for (;;) {
        uint8_t *buf;
        size_t len, cap;
        if (c->inlen) {
            cap = c->inlen + sizeof scratch;
            c->in = realloc(c->in, cap);
            buf = c->in;
            len = c->inlen;
        } else {
            buf = scratch;
            cap = sizeof scratch;
            len = 0;
        }
        size_t room = cap - len;
        ssize_t n = recv(c->fd, buf + len, room, 0);
        if (n == 0) {
            fail("the server closed a connection%s", "");
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                fail("recv: %s", strerror(errno));
            if (c->inlen)
                c->in = realloc(c->in, c->inlen);
            return;
        }
        len += (size_t)n;
        size_t off = 0;
        if (!c->upgraded)
            off = on_handshake(c, buf, len);
        if (c->upgraded)
            off += on_frames(c, buf + off, len - off);
        if (failed)
            return;
        if (off == len) {
            free(c->in);
            c->in = NULL;
            c->inlen = 0;
        } else if (buf == scratch) {
            c->in = malloc(len - off);
            memcpy(c->in, buf + off, len - off);
            c->inlen = len - off;
        } else {
            memmove(c->in, c->in + off, len - off);
            c->inlen = len - off;
        }
        if ((size_t)n < room)
            return;
    }
}

static void poll_once(int timeout_ms)
{
    struct epoll_event evs[512];
    int n = epoll_wait(ep, evs, 512, timeout_ms);
    for (int i = 0; i < n && !failed; i++) {
        conn_t *c = &conns[evs[i].data.u32];
        if (evs[i].events & EPOLLOUT)
            conn_flush(c);
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(c);
    }
}

static int conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail("socket: %s", strerror(errno));
        return -1;
    }
    bench_nodelay(c->fd);
    if (bench_bind_source(c->fd, src_net, &src_turn) != 0) {
        fail("bind: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fail("connect: %s", strerror(errno));
        return -1;
    }
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
    c->last_round = -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    char req[512], ext[160] = "";
    if (want_deflate)
        snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: permessage-deflate; %s\r\n",
                 getenv("BENCH_WS_OFFER") ? getenv("BENCH_WS_OFFER") : "client_max_window_bits");
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     port, ext);
    conn_send_raw(c, (uint8_t *)req, (size_t)n);
    return 0;
}

/* Opens connections [from, to) in batches, each batch until all are ready. */
static void open_all(long from, long to, double limit_s)
{
    uint64_t deadline = bench_now_ns() + (uint64_t)(limit_s * 1e9);
    for (long b = from; b < to && !failed; b += 500) {
        long e = b + 500 < to ? b + 500 : to;
        for (long i = b; i < e && !failed; i++)
            conn_open(&conns[i]);
        for (;;) {
            long ready = 0;
            for (long i = b; i < e; i++)
                ready += conns[i].ready;
            if (ready == e - b || failed)
                break;
            if (bench_now_ns() > deadline) {
                fail("connections not ready in time%s", "");
                break;
            }
            poll_once(100);
        }
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void make_corpus(void)
{
    static const char *words[] = {"loom",   "socket", "message",  "frame",    "deflate", "topic",
                                  "server", "client", "\"user\"", "\"text\"", "chat",    "hello",
                                  "event",  "buffer", "window",   "close",    "ping",    "pong"};
    corpus_len = 1u << 20;
    corpus = malloc(corpus_len + 64);
    size_t o = 0;
    while (o < corpus_len) {
        uint64_t r = bench_rand(&rng);
        int k = snprintf(corpus + o, 64, "{\"%s\":%u,\"%s\":\"%s %s\"},", words[r % 18],
                         (unsigned)(r >> 40) % 100000, words[(r >> 8) % 18], words[(r >> 16) % 18],
                         words[(r >> 24) % 18]);
        o += (size_t)k;
    }
}

int main(int argc, char **argv)
{
    port = (int)bench_arg_long(argc, argv, "--port", 0);
    const char *m = bench_arg(argc, argv, "--mode", "echo");
    mode = !strcmp(m, "echo")      ? MODE_ECHO
           : !strcmp(m, "deflate") ? MODE_DEFLATE
           : !strcmp(m, "bcast")   ? MODE_BCAST
           : !strcmp(m, "idle")    ? MODE_IDLE
                                   : -1;
    long defconns[] = {100, 10, 10000, 10000};
    nconns = bench_arg_long(argc, argv, "--conns", mode >= 0 ? defconns[mode] : 0);
    size = (size_t)bench_arg_long(argc, argv, "--size", mode == MODE_DEFLATE ? 16384 : 64);
    double duration = bench_arg_double(argc, argv, "--duration", 5);
    double warmup = bench_arg_double(argc, argv, "--warmup", 0.5);
    long rounds = bench_arg_long(argc, argv, "--rounds", 30);
    pids = bench_arg(argc, argv, "--pids", NULL);
    src_net = (int)bench_arg_long(argc, argv, "--src-net", 0);
    want_deflate = mode == MODE_DEFLATE || bench_flag(argc, argv, "--deflate");
    signal(SIGPIPE, SIG_IGN);
    long lim = bench_raise_nofile();
    if (port <= 0 || mode < 0 || nconns < 1 || size < 1 || size > (1u << 20) || nconns + 16 > lim) {
        fprintf(stderr,
                "usage: bench-ws-load --port P --mode echo|deflate|bcast|idle "
                "[--conns N] [--size S] ... (open-file limit %ld)\n",
                lim);
        return 2;
    }
    make_corpus();
    conns = calloc((size_t)nconns + 1, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    long rss0 = rss_bytes();
    uint64_t t_open = bench_now_ns();
    open_all(0, nconns, 120);
    double open_s = (double)(bench_now_ns() - t_open) / 1e9;
    if (failed)
        goto out;

    if (mode == MODE_IDLE) {
        usleep(500000);
        long rss1 = rss_bytes();
        int compressed = conns[0].deflate;
        printf("{\"conns\":%ld,\"deflate\":%d,\"rss_before\":%ld,\"rss_after\":%ld,"
               "\"bytes_per_conn\":%.1f,\"open_s\":%.2f}\n",
               nconns, compressed, rss0, rss1,
               rss0 >= 0 ? (double)(rss1 - rss0) / (double)nconns : -1.0, open_s);
        return 0;
    }
    if (mode == MODE_BCAST) {
        /* The trigger connection: not subscribed. */
        conn_t *t = &conns[nconns];
        if (conn_open(t) != 0)
            goto out;
        while (!t->ready && !failed)
            poll_once(100);
        long warm = 3;
        double *lat = calloc((size_t)rounds, sizeof *lat);
        double cpu0 = 0;
        uint64_t tstart = 0;
        for (long r = 0; r < warm + rounds && !failed; r++) {
            if (r == warm) {
                cpu0 = bench_proc_cpu_s(pids);
                tstart = bench_now_ns();
            }
            round_now = r;
            bcast_got = 0;
            char msg[128];
            snprintf(msg, sizeof msg, "broadcast #%08d %054d", (int)(r % 100000000), 0);
            uint64_t t0 = bench_now_ns();
            conn_send_msg(t, 1, msg, 10 + 64, 0);
            while (bcast_got < (uint64_t)nconns && !failed) {
                if (bench_now_ns() - t0 > 20000000000ull) {
                    fail("a broadcast did not reach every subscriber in 20 s%s", "");
                    break;
                }
                poll_once(100);
            }
            if (r >= warm)
                lat[r - warm] = (double)(bench_now_ns() - t0) / 1e6;
        }
        if (failed)
            goto out;
        double cpu = pids ? bench_proc_cpu_s(pids) - cpu0 : -1;
        double wall = (double)(bench_now_ns() - tstart) / 1e9;
        qsort(lat, (size_t)rounds, sizeof *lat, cmp_double);
        printf("{\"subscribers\":%ld,\"rounds\":%ld,\"seconds\":%.3f,\"server_cpu_s\":%.3f,"
               "\"cpu_ms_per_bcast\":%.3f,\"latency_ms_median\":%.3f,\"latency_ms_max\":%.3f,"
               "\"open_s\":%.2f}\n",
               nconns, rounds, wall, cpu, pids ? cpu * 1000 / (double)rounds : -1.0,
               lat[rounds / 2], lat[rounds - 1], open_s);
        return 0;
    }

    /* echo and deflate: one message in flight per connection. */
    for (long i = 0; i < nconns; i++)
        send_next(&conns[i]);
    uint64_t t0 = bench_now_ns(), tw = t0 + (uint64_t)(warmup * 1e9);
    while (bench_now_ns() < tw && !failed)
        poll_once(50);
    uint64_t m0 = msgs, b0 = bytes, w0 = wire_bytes;
    double cpu0 = bench_proc_cpu_s(pids);
    uint64_t ts = bench_now_ns(), te = ts + (uint64_t)(duration * 1e9);
    while (bench_now_ns() < te && !failed)
        poll_once(50);
    double cpu = pids ? bench_proc_cpu_s(pids) - cpu0 : -1;
    double secs = (double)(bench_now_ns() - ts) / 1e9;
    if (failed)
        goto out;
    uint64_t dm = msgs - m0;
    double mib = (double)(bytes - b0) / 1048576.0;
    printf("{\"msgs\":%llu,\"seconds\":%.3f,\"msgs_per_s\":%.1f,\"server_cpu_s\":%.3f,"
           "\"msgs_per_cpu_s\":%.1f,\"mib\":%.2f,\"mib_per_cpu_s\":%.2f,\"deflate\":%d,"
           "\"wire_ratio\":%.3f}\n",
           (unsigned long long)dm, secs, (double)dm / secs, cpu, cpu > 0 ? (double)dm / cpu : -1.0,
           mib, cpu > 0 ? mib / cpu : -1.0, conns[0].deflate,
           bytes > b0 ? (double)(wire_bytes - w0) / (double)(bytes - b0) : -1.0);
    return 0;
out:
    printf("{\"error\":\"%s\"}\n", why);
    return 1;
}
