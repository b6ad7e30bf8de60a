/* test_ws_conformance: a data-driven table modelled on the Autobahn
 * testsuite's case groups (1 framing, 2 pings and pongs, 3 reserved bits,
 * 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling, 9 limits, 12/13
 * compression: negotiation, the RFC 7692 examples, RSV1 misuse, corrupt data
 * and a decompression bomb), run against loom's echo server by a raw
 * scripted peer: hand-framed bytes over a blocking socket, sometimes one
 * byte per write so that frames and UTF-8 sequences split across reads.
 * Every case checks the frames that come back, and the close code; every
 * violation must also reach the server's on_event as a websocket error
 * naming the peer, the server must keep serving (the next case connects),
 * and every connection's on_close runs once. The loop ends clean. */
#include <pthread.h>
#include <stdatomic.h>

#include "ws_test.h"

#define MAXMSG (64 * 1024)

static loom_loop_t *loop;
static loom_http_server_t *srv;
static atomic_int port_, nerr, nclose, nopen, bad_msg;
static char last_err[256];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void on_message(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len, void *d)
{
    (void)d;
    CHECK(loom_ws_send(ws, type, msg, len) >= 0);
}

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_WS_ERROR) {
        pthread_mutex_lock(&mu);
        snprintf(last_err, sizeof last_err, "%s", ev->msg);
        pthread_mutex_unlock(&mu);
        if (strstr(ev->msg, "127.0.0.1:") == NULL)
            bad_msg++;
        nerr++;
    }
}

static void on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)code, (void)reason, (void)rl, (void)d;
    CHECK(reason[rl] == '\0');
    nclose++;
}

static const char *const protos[] = {"chat", NULL};
static const loom_ws_opts wopts = {.deflate = true,
                                   .protocols = protos,
                                   .on_message = on_message,
                                   .on_event = on_event,
                                   .on_close = on_close,
                                   .max_message = MAXMSG,
                                   .max_frame = MAXMSG};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    if (loom_ws_accept(req, &wopts, NULL) == 0)
        nopen++;
}

static void on_stop(void *d)
{
    (void)d;
    loom_http_server_close(srv, 0, NULL);
}

static void *server_main(void *arg)
{
    (void)arg;
    loop = test_loop_new();
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    port_ = loom_http_server_port(srv);
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    return NULL;
}

/* --- The table ------------------------------------------------------------------ */

enum { END = 0, SEND, SEND_SPLIT, RAW, EXPECT, CLOSE };
typedef struct {
    int kind;
    unsigned b0;      /* SEND: first byte; EXPECT: expected first byte */
    const char *data; /* NULL: `len` bytes of 'x' (or RAW: data is the raw bytes) */
    size_t len;
} op_t;
typedef struct {
    const char *name;
    int close; /* the close code expected from the server (0: none, the
                * client then closes with 1000 and expects 1000 back) */
    int err;   /* 1: a websocket error event is expected */
    op_t ops[12];
} case_t;

#define S(b0, s)                                                                                   \
    {                                                                                              \
        SEND, b0, s, sizeof(s) - 1                                                                 \
    }
#define SN(b0, n)                                                                                  \
    {                                                                                              \
        SEND, b0, NULL, n                                                                          \
    }
#define SS(b0, s)                                                                                  \
    {                                                                                              \
        SEND_SPLIT, b0, s, sizeof(s) - 1                                                           \
    }
#define E(b0, s)                                                                                   \
    {                                                                                              \
        EXPECT, b0, s, sizeof(s) - 1                                                               \
    }
#define EN(b0, n)                                                                                  \
    {                                                                                              \
        EXPECT, b0, NULL, n                                                                        \
    }
#define R(s)                                                                                       \
    {                                                                                              \
        RAW, 0, s, sizeof(s) - 1                                                                   \
    }
#define TXT 0x81
#define BIN 0x82

static const case_t cases[] = {
    /* 1: framing */
    {"1.1.1 empty text", 0, 0, {S(TXT, ""), E(TXT, "")}},
    {"1.1.2 text 125", 0, 0, {SN(TXT, 125), EN(TXT, 125)}},
    {"1.1.3 text 126", 0, 0, {SN(TXT, 126), EN(TXT, 126)}},
    {"1.1.4 text 127", 0, 0, {SN(TXT, 127), EN(TXT, 127)}},
    {"1.1.5 text 128", 0, 0, {SN(TXT, 128), EN(TXT, 128)}},
    {"1.1.6 text 65535", 0, 0, {SN(TXT, 65535), EN(TXT, 65535)}},
    {"1.1.7 text 65536", 0, 0, {SN(TXT, 65536), EN(TXT, 65536)}},
    {"1.1.8 text 200 split into 1-byte reads", 0, 0, {{SEND_SPLIT, TXT, NULL, 200}, EN(TXT, 200)}},
    {"1.1.9 text 300 (16-bit length) split into 1-byte reads",
     0,
     0,
     {{SEND_SPLIT, TXT, NULL, 300}, EN(TXT, 300)}},
    {"1.2.1 empty binary", 0, 0, {S(BIN, ""), E(BIN, "")}},
    {"1.2.3 binary 126", 0, 0, {SN(BIN, 126), EN(BIN, 126)}},
    {"1.2.6 binary 65535", 0, 0, {SN(BIN, 65535), EN(BIN, 65535)}},
    {"1.2.8 two frames in one write",
     0,
     0,
     {R("\x81\x82\0\0\0\0hi\x82\x81\0\0\0\0!"), E(TXT, "hi"), E(BIN, "!")}},
    /* 2: pings and pongs */
    {"2.1 empty ping", 0, 0, {S(0x89, ""), E(0x8A, "")}},
    {"2.2 ping with text", 0, 0, {S(0x89, "Hello, world!"), E(0x8A, "Hello, world!")}},
    {"2.3 ping with binary",
     0,
     0,
     {S(0x89, "\x00\xff\xfe\xfd\xfc"), E(0x8A, "\x00\xff\xfe\xfd\xfc")}},
    {"2.4 ping 125", 0, 0, {SN(0x89, 125), EN(0x8A, 125)}},
    {"2.5 ping 126", 1002, 1, {SN(0x89, 126)}},
    {"2.6 ping 125 split", 0, 0, {{SEND_SPLIT, 0x89, NULL, 125}, EN(0x8A, 125)}},
    {"2.7 unsolicited pong", 0, 0, {S(0x8A, ""), S(TXT, "a"), E(TXT, "a")}},
    {"2.8 unsolicited pong with payload", 0, 0, {S(0x8A, "unsolicited"), S(TXT, "b"), E(TXT, "b")}},
    {"2.10 pings in a row",
     0,
     0,
     {S(0x89, "1"), S(0x89, "2"), S(0x89, "3"), E(0x8A, "1"), E(0x8A, "2"), E(0x8A, "3")}},
    /* 3: reserved bits */
    {"3.1 RSV1 on text", 1002, 1, {S(0xC1, "x")}},
    {"3.2 RSV2 after a good frame", 1002, 1, {S(TXT, "ok"), S(0xA1, "x"), E(TXT, "ok")}},
    {"3.3 RSV3", 1002, 1, {S(0x91, "x")}},
    {"3.4 RSV1+RSV2+RSV3", 1002, 1, {S(0xF1, "x")}},
    {"3.5 RSV on binary", 1002, 1, {S(0xD2, "\x01")}},
    {"3.6 RSV on ping", 1002, 1, {S(0xC9, "x")}},
    {"3.7 RSV on close", 1002, 1, {S(0xF8, "")}},
    /* 4: opcodes */
    {"4.1.1 opcode 3", 1002, 1, {S(0x83, "")}},
    {"4.1.2 opcode 4 with payload", 1002, 1, {S(0x84, "reserved")}},
    {"4.1.3 opcode 5 after text", 1002, 1, {S(TXT, "t"), S(0x85, ""), E(TXT, "t")}},
    {"4.1.5 opcode 7", 1002, 1, {S(0x87, "")}},
    {"4.2.1 opcode 11", 1002, 1, {S(0x8B, "")}},
    {"4.2.3 opcode 13", 1002, 1, {S(0x8D, "")}},
    {"4.2.5 opcode 15", 1002, 1, {S(0x8F, "x")}},
    /* 5: fragmentation */
    {"5.1 fragmented ping", 1002, 1, {S(0x09, "frag"), S(0x80, "ment")}},
    {"5.2 fragmented pong", 1002, 1, {S(0x0A, "frag"), S(0x80, "ment")}},
    {"5.3 text in two fragments", 0, 0, {S(0x01, "frag"), S(0x80, "ment"), E(TXT, "fragment")}},
    {"5.5 text in 1-byte writes", 0, 0, {SS(0x01, "frag"), SS(0x80, "ment"), E(TXT, "fragment")}},
    {"5.5.1 ping between fragments, all in 1-byte writes",
     0,
     0,
     {SS(0x01, "frag"), SS(0x89, "p"), SS(0x80, "ment"), E(0x8A, "p"), E(TXT, "fragment")}},
    {"5.6 ping between fragments",
     0,
     0,
     {S(0x01, "frag"), S(0x89, "p"), S(0x80, "ment"), E(0x8A, "p"), E(TXT, "fragment")}},
    {"5.9 continuation with nothing to continue", 1002, 1, {S(0x80, "x")}},
    {"5.10 unfinished continuation first", 1002, 1, {S(0x00, "x")}},
    {"5.15 text inside a fragmented text", 1002, 1, {S(0x01, "a"), S(0x81, "b")}},
    {"5.17 binary in three fragments",
     0,
     0,
     {S(0x02, "a"), S(0x00, "b"), S(0x80, "c"), E(BIN, "abc")}},
    {"5.19 empty fragments", 0, 0, {S(0x01, ""), S(0x00, ""), S(0x80, ""), E(TXT, "")}},
    /* 6: UTF-8 */
    {"6.2.1 valid UTF-8",
     0,
     0,
     {S(TXT, "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
      E(TXT, "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!")}},
    {"6.2.3 valid, sequence split across fragments",
     0,
     0,
     {S(0x01, "\xce\xba\xe1"), S(0x00, "\xbd"), S(0x80, "\xb9\xcf\x83"),
      E(TXT, "\xce\xba\xe1\xbd\xb9\xcf\x83")}},
    {"6.2.4 valid, 1-byte writes",
     0,
     0,
     {SS(TXT, "\xf0\x9f\x98\x80 \xe2\x82\xac"), E(TXT, "\xf0\x9f\x98\x80 \xe2\x82\xac")}},
    {"6.3.1 invalid byte", 1007, 1, {S(TXT, "ab\xff")}},
    {"6.3.2 invalid in the second fragment",
     1007,
     1,
     {S(0x01, "\xce\xba"), S(0x80, "\xed\xa0\x80")}},
    {"6.4.1 invalid, split across reads",
     1007,
     1,
     {SS(TXT, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
              "edited")}},
    {"6.4.2 invalid continuation split across fragments",
     1007,
     1,
     {S(0x01, "\xf4"), S(0x80, "\x90\x80\x80")}},
    {"6.5 overlong", 1007, 1, {S(TXT, "\xc0\xaf")}},
    {"6.6 overlong 3 bytes", 1007, 1, {S(TXT, "\xe0\x80\xaf")}},
    {"6.7 surrogate", 1007, 1, {S(TXT, "\xed\xa0\x80")}},
    {"6.8 ends inside a sequence", 1007, 1, {S(TXT, "ok\xe2\x82")}},
    {"6.9 lone continuation", 1007, 1, {S(TXT, "\x80")}},
    {"6.10 binary is not checked", 0, 0, {S(BIN, "\xff\xfe"), E(BIN, "\xff\xfe")}},
    /* 7: close */
    {"7.1.1 close, no payload", 0, 0, {S(0x88, ""), E(0x88, "")}},
    {"7.1.2 close 1000", 0, 0, {S(0x88, "\x03\xe8"), E(0x88, "\x03\xe8")}},
    {"7.1.3 data after close is ignored",
     0,
     0,
     {R("\x88\x82\0\0\0\0\x03\xe8\x81\x81\0\0\0\0x"), E(0x88, "\x03\xe8")}},
    {"7.3.1 close with a 1-byte payload", 1002, 1, {S(0x88, "\x03")}},
    {"7.3.3 close with a reason", 0, 0, {S(0x88, "\x03\xe8reason"), E(0x88, "\x03\xe8")}},
    {"7.3.4 close with a reason in 1-byte writes",
     0,
     0,
     {SS(0x88, "\x03\xe8reason"), E(0x88, "\x03\xe8")}},
    {"7.5.1 close reason not UTF-8", 1007, 1, {S(0x88, "\x03\xe8\xce\xba\xff")}},
    {"7.5.2 close reason not UTF-8, 1-byte writes", 1007, 1, {SS(0x88, "\x03\xe8\xce\xba\xff")}},
    {"7.7.2 close 1001", 0, 0, {S(0x88, "\x03\xe9"), E(0x88, "\x03\xe9")}},
    {"7.7.7 close 1011", 0, 0, {S(0x88, "\x03\xf3"), E(0x88, "\x03\xf3")}},
    {"7.7.12 close 3000", 0, 0, {S(0x88, "\x0b\xb8"), E(0x88, "\x0b\xb8")}},
    {"7.7.13 close 4999", 0, 0, {S(0x88, "\x13\x87"), E(0x88, "\x13\x87")}},
    {"7.9.1 close 0", 1002, 1, {S(0x88, "\x00\x00")}},
    {"7.9.2 close 999", 1002, 1, {S(0x88, "\x03\xe7")}},
    {"7.9.3 close 1004", 1002, 1, {S(0x88, "\x03\xec")}},
    {"7.9.4 close 1005", 1002, 1, {S(0x88, "\x03\xed")}},
    {"7.9.5 close 1006", 1002, 1, {S(0x88, "\x03\xee")}},
    {"7.9.6 close 1015", 1002, 1, {S(0x88, "\x03\xf7")}},
    {"7.9.7 close 2999", 1002, 1, {S(0x88, "\x0b\xb7")}},
    {"7.9.8 close 5000", 1002, 1, {S(0x88, "\x13\x88")}},
    /* 9: limits */
    {"9.1 message at the limit, in fragments",
     0,
     0,
     {SN(0x02, MAXMSG / 2), SN(0x80, MAXMSG / 2), EN(BIN, MAXMSG)}},
    {"9.2 message over the limit",
     1009,
     1,
     {SN(0x02, MAXMSG / 2), SN(0x00, MAXMSG / 2), SN(0x80, 1)}},
    {"9.3 frame over the limit", 1009, 1, {SN(BIN, MAXMSG + 1)}},
    {"9.4 length 2^63", 1002, 1, {R("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\0\0\0\0")}},
    {"9.5 huge length, no payload",
     1009,
     1,
     {R("\x82\xff\x00\x00\x00\x01\x00\x00\x00\x00\0\0\0\0")}},
    /* masking */
    {"10.1 unmasked client frame", 1002, 1, {R("\x81\x02hi")}},
    {0, 0, 0, {{0}}}};

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)('a' + (i & 15)); /* fragments concatenate */
}

static unsigned char sbuf[MAXMSG + 64], pbuf[MAXMSG + 64], xbuf[MAXMSG + 64];

static int read_close(int fd, const char *name)
{
    for (;;) {
        size_t n;
        int b0 = ws_raw_read_frame(fd, pbuf, sizeof pbuf, &n);
        if (b0 < 0) {
            fprintf(stderr, "%s: eof before a close frame\n", name);
            return -1;
        }
        if ((b0 & 0x0F) == 8)
            return n >= 2 ? (pbuf[0] << 8 | pbuf[1]) : 1005;
    }
}

/* Whether the case sends a close frame itself. */
static bool we_closed(const case_t *c)
{
    for (const op_t *o = c->ops; o->kind != END; o++)
        if ((o->kind == RAW ? (unsigned char)o->data[0] : o->b0) == 0x88)
            return true;
    return false;
}

static void run_case(const case_t *c)
{
    int fd = ws_raw_connect(port_);
    char head[1024];
    CHECK_EQ(ws_raw_handshake(fd, NULL, head, sizeof head), 101);
    int err0 = nerr;
    for (const op_t *o = c->ops; o->kind != END; o++) {
        const unsigned char *d = (const unsigned char *)o->data;
        if (d == NULL) {
            fill(xbuf, o->len);
            d = xbuf;
        }
        if (o->kind == RAW) {
            ws_raw_send(fd, o->data, o->len);
        } else if (o->kind == SEND) {
            size_t n = ws_frame_enc(sbuf, o->b0, true, d, o->len);
            ws_raw_send(fd, sbuf, n);
        } else if (o->kind == SEND_SPLIT) {
            size_t n = ws_frame_enc(sbuf, o->b0, true, d, o->len);
            for (size_t i = 0; i < n; i++) {
                ws_raw_send(fd, sbuf + i, 1);
                if (i % 16 == 0)
                    usleep(200); /* separate reads, mostly */
            }
        } else if (o->kind == EXPECT) {
            size_t n = 0;
            int b0 = ws_raw_read_frame(fd, pbuf, sizeof pbuf, &n);
            if (b0 != (int)o->b0 || n != o->len || memcmp(pbuf, d, n) != 0) {
                fprintf(stderr, "%s: expected frame %#x len %zu, got %#x len %zu\n", c->name, o->b0,
                        o->len, b0, n);
                exit(1);
            }
        }
    }
    if (c->close) {
        int code = read_close(fd, c->name);
        if (code != c->close) {
            fprintf(stderr, "%s: close code %d, expected %d\n", c->name, code, c->close);
            exit(1);
        }
    } else if (!we_closed(c)) {
        /* The connection is still good: a normal close. */
        size_t n = ws_frame_enc(sbuf, 0x88, true, "\x03\xe8", 2);
        ws_raw_send(fd, sbuf, n);
        CHECK_EQ(read_close(fd, c->name), 1000);
    }
    /* The server ends the TCP connection. */
    char b;
    CHECK(recv(fd, &b, 1, 0) <= 0);
    close(fd);
    /* The error event came (it is emitted before the socket closes). */
    if (c->err && nerr == err0) {
        fprintf(stderr, "%s: no websocket error event\n", c->name);
        exit(1);
    }
    if (!c->err && nerr != err0) {
        fprintf(stderr, "%s: unexpected error: %s\n", c->name, last_err);
        exit(1);
    }
}

/* Handshake refusals: 426 and 400 with reasons; the server keeps serving. */
static void bad_handshakes(void)
{
    static const struct {
        const char *req;
        int status;
    } hs[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
         426},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nUpgrade: websocket\r\nConnection: "
         "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
         "13\r\n\r\n",
         400},
        /* RFC 6455 section 4.1: HTTP/1.1 or later (this one hung, taken over). */
        {"GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        /* Section 11.3: the key and the version appear once. */
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: "
         "AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
         "Sec-WebSocket-Version: 8\r\n\r\n",
         400},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        int fd = ws_raw_connect(port_);
        ws_raw_send(fd, hs[i].req, strlen(hs[i].req));
        char buf[1024];
        ssize_t n = recv(fd, buf, sizeof buf - 1, 0);
        CHECK(n > 12);
        buf[n] = '\0';
        CHECK_EQ(atoi(buf + 9), hs[i].status);
        if (hs[i].status == 426) {
            CHECK(strstr(buf, "Sec-WebSocket-Version: 13") != NULL);
            /* RFC 9110 sections 15.5.22 and 7.8: Upgrade, and with it the
             * upgrade connection option. */
            CHECK(strstr(buf, "\r\nUpgrade: websocket\r\n") != NULL);
            CHECK(strstr(buf, "\r\nConnection: upgrade\r\n") != NULL);
        }
        CHECK(strstr(buf, "websocket: ") != NULL); /* the reason */
        close(fd);
    }
    /* The RFC's sample key gives the RFC's sample answer; an unacceptable
     * compression offer (an unknown parameter) is declined. */
    int fd = ws_raw_connect(port_);
    char head[1024];
    CHECK_EQ(ws_raw_handshake(fd, "Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n", head,
                              sizeof head),
             101);
    CHECK(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    CHECK(strstr(head, "Sec-WebSocket-Extensions") == NULL);
    size_t n = ws_frame_enc(sbuf, TXT, true, "z", 1);
    ws_raw_send(fd, sbuf, n);
    CHECK_EQ(ws_raw_read_frame(fd, pbuf, sizeof pbuf, &n), TXT);
    close(fd); /* no close frame: an abnormal end, reported as 1006 */
    /* Sections 9.1 and 11.3.4: the extension and subprotocol lists may be
     * split over several fields; all of them count (only the first did). */
    fd = ws_raw_connect(port_);
    CHECK_EQ(ws_raw_handshake(fd,
                              "Sec-WebSocket-Extensions: x-unknown\r\n"
                              "Sec-WebSocket-Extensions: permessage-deflate\r\n"
                              "Sec-WebSocket-Protocol: superchat\r\n"
                              "Sec-WebSocket-Protocol: chat\r\n",
                              head, sizeof head),
             101);
    CHECK(strstr(head, "Sec-WebSocket-Extensions: permessage-deflate\r\n") != NULL);
    CHECK(strstr(head, "Sec-WebSocket-Protocol: chat\r\n") != NULL);
    n = ws_frame_enc(sbuf, 0x88, true, "\x03\xe8", 2);
    ws_raw_send(fd, sbuf, n);
    CHECK_EQ(ws_raw_read_frame(fd, pbuf, sizeof pbuf, &n), 0x88);
    close(fd);
}

/* Groups 12 and 13: permessage-deflate negotiated by a raw peer. The
 * payloads are the RFC 7692 section 7.2.3 examples, and a bomb made with the
 * frame layer's compressor: 1 MiB of zeros against the 64 KiB limit. */
static void compression(void)
{
    static const struct {
        const char *name;
        const char *wire; /* client frames (masked here) */
        size_t len;
        int close; /* 0: expect the echo "Hello" */
    } zc[] = {
        {"12.1 compressed Hello", "\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00", 9, 0},
        {"12.2 compressed Hello in two frames", "\x41\x03\xf2\x48\xcd\x80\x04\xc9\xc9\x07\x00", 11,
         0},
        {"12.3 stored block", "\xc1\x0b\x00\x05\x00\xfa\xffHello", 13, 0},
        {"13.1 RSV1 on a continuation", "\x01\x01H\xc0\x01i", 6, 1002},
        {"13.2 RSV1 on a ping", "\xc9\x00", 2, 1002},
        {"13.3 corrupt deflate data", "\xc1\x04\xff\xff\xff\xff", 6, -1},
    };
    for (size_t i = 0; i < sizeof zc / sizeof zc[0]; i++) {
        int fd = ws_raw_connect(port_);
        char head[1024];
        CHECK_EQ(ws_raw_handshake(fd,
                                  "Sec-WebSocket-Extensions: permessage-deflate; "
                                  "client_max_window_bits\r\n",
                                  head, sizeof head),
                 101);
        CHECK(strstr(head, "Sec-WebSocket-Extensions: permessage-deflate") != NULL);
        int err0 = nerr;
        /* Re-frame each client frame masked. */
        const unsigned char *w = (const unsigned char *)zc[i].wire;
        size_t off = 0;
        while (off < zc[i].len) {
            size_t n = w[off + 1];
            size_t k = ws_frame_enc(sbuf, w[off], true, w + off + 2, n);
            ws_raw_send(fd, sbuf, k);
            off += 2 + n;
        }
        if (zc[i].close == 0) {
            size_t n;
            CHECK_EQ(ws_raw_read_frame(fd, pbuf, sizeof pbuf, &n), TXT);
            if (n != 5 || memcmp(pbuf, "Hello", 5) != 0) {
                fprintf(stderr, "%s: bad echo\n", zc[i].name);
                exit(1);
            }
            n = ws_frame_enc(sbuf, 0x88, true, "\x03\xe8", 2);
            ws_raw_send(fd, sbuf, n);
            CHECK_EQ(read_close(fd, zc[i].name), 1000);
        } else {
            int code = read_close(fd, zc[i].name);
            if ((zc[i].close > 0 && code != zc[i].close) || (zc[i].close < 0 && code < 1002)) {
                fprintf(stderr, "%s: close code %d\n", zc[i].name, code);
                exit(1);
            }
            char b;
            while (recv(fd, &b, 1, 0) > 0) /* the event precedes the server's close */
                ;
            if (nerr == err0) {
                fprintf(stderr, "%s: no event (close %d)\n", zc[i].name, code);
                exit(1);
            }
        }
        close(fd);
    }
    /* The bomb: stopped by max_message on the inflated size (1009). */
    loom_ws_deflate_t z = {0};
    loom_ws_deflate_params_t agreed = {0};
    CHECK_OK(loom_ws_deflate_init(&z, LOOM_WS_ROLE_CLIENT, &agreed, NULL, 0));
    static char zeros[1 << 20];
    size_t cap = loom_ws_deflate_bound(sizeof zeros), zl = 0;
    char *zb = malloc(cap);
    CHECK(zb != NULL);
    CHECK_OK(loom_ws_deflate_compress(&z, zeros, sizeof zeros, 1, zb, cap, &zl));
    loom_ws_deflate_free(&z);
    CHECK(zl < MAXMSG); /* small on the wire */
    int fd = ws_raw_connect(port_);
    char head[1024];
    CHECK_EQ(
        ws_raw_handshake(fd, "Sec-WebSocket-Extensions: permessage-deflate\r\n", head, sizeof head),
        101);
    size_t k = ws_frame_enc(sbuf, 0xC2, true, zb, zl);
    ws_raw_send(fd, sbuf, k);
    free(zb);
    CHECK_EQ(read_close(fd, "13.4 decompression bomb"), 1009);
    close(fd);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, server_main, NULL) == 0);
    while (port_ == 0)
        usleep(1000);
    int ncase = 0;
    for (const case_t *c = cases; c->name; c++, ncase++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        run_case(c);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (ms > 1000)
            fprintf(stderr, "%s: slow (%.0f ms)\n", c->name, ms);
    }
    bad_handshakes();
    ncase += 2;
    compression();
    ncase += 7;
    /* Every connection is closed and reported once. */
    for (int i = 0; i < 2000 && nclose < nopen; i++)
        usleep(1000);
    CHECK_EQ(nopen, ncase);
    CHECK_EQ(nclose, nopen);
    CHECK_EQ(bad_msg, 0);
    CHECK_OK(loom_post(loop, (loom_post_fn)on_stop, NULL));
    pthread_join(th, NULL);
    test_loop_free_clean(loop);
    printf("%d cases\n", ncase);
    return 0;
}
