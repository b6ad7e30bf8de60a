/* test_ws_client_raw: loom's client against a raw scripted server (a thread
 * with blocking sockets) that answers the opening handshake as each case
 * says and sends hand-framed bytes behind it. Checked per case: whether
 * on_open runs, the messages delivered, the frames the client sends back
 * (unmasked by the script: a masked pong with the ping's payload, a close
 * with the right code), the websocket error event, and on_close's code,
 * once. The bad answers: a wrong Sec-WebSocket-Accept, a subprotocol or an
 * extension that was not offered (also on a second Sec-WebSocket-Extensions
 * line, while one on a second line alone is agreed), Sec-WebSocket-Accept or
 * -Protocol twice, a redirect (not followed), no Upgrade,
 * silence (the handshake timeout). The bad frames: masked server frames,
 * reserved bits, unknown opcodes, fragmented control frames, an orphan
 * continuation, invalid UTF-8 split across frames, a 1-byte close payload.
 * Then a refused connection: its event names the host:port asked for. The
 * loop ends clean. */
#include <pthread.h>
#include <stdatomic.h>

#include "ws/ws_internal.h"
#include "ws_test.h"

typedef struct {
    const char *name;
    const char
        *answer; /* the head after the status line's "HTTP/1.1 "; %s = accept; NULL: silence */
    const char *frames; /* raw bytes sent behind the head */
    size_t frames_len;
    bool open;         /* on_open expected */
    const char *msgs;  /* the messages expected, concatenated with '|' after each */
    int reply_op;      /* a frame the client must send back (0: none), before any close */
    const char *reply; /* its payload */
    int client_close;  /* the close code the client must send (0: none expected) */
    int code;          /* on_close's code */
    bool err;          /* a websocket error event expected */
} case_t;

#define OK101                                                                                      \
    "101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "                                \
    "Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
#define F(s) s, sizeof(s) - 1

static const case_t cases[] = {
    {"text, binary and a close 1000", OK101 "\r\n",
     F("\x81\x02hi\x82\x03\x01\x02\x03\x88\x02\x03\xe8"), true, "hi|\x01\x02\x03|", 0, NULL, 1000,
     1000, false},
    {"fragmented text, ping in between", OK101 "\r\n",
     F("\x01\x03"
       "fra\x89\x04ping\x80\x03gme\x88\x00"),
     true, "fragme|", 0x0A, "ping", 0, 1005, false},
    {"close with a reason", OK101 "\r\n",
     F("\x88\x06\x0f\xa0"
       "done"),
     true, "", 0, NULL, 4000, 4000, false},
    {"subprotocol offered", OK101 "Sec-WebSocket-Protocol: chat\r\n\r\n", F("\x88\x00"), true, "",
     0, NULL, 0, 1005, false},
    {"masked server frame", OK101 "\r\n", F("\x81\x82\x01\x02\x03\x04hi"), true, "", 0, NULL, 1002,
     1002, true},
    {"RSV1 without extension", OK101 "\r\n", F("\xc1\x01x"), true, "", 0, NULL, 1002, 1002, true},
    {"unknown opcode", OK101 "\r\n", F("\x83\x00"), true, "", 0, NULL, 1002, 1002, true},
    {"fragmented ping", OK101 "\r\n", F("\x09\x01p\x80\x01q"), true, "", 0, NULL, 1002, 1002, true},
    {"orphan continuation", OK101 "\r\n", F("\x80\x01x"), true, "", 0, NULL, 1002, 1002, true},
    {"invalid UTF-8 split across frames", OK101 "\r\n", F("\x01\x02\xce\xba\x80\x02\xed\xa0"), true,
     "", 0, NULL, 1007, 1007, true},
    {"1-byte close payload", OK101 "\r\n", F("\x88\x01\x03"), true, "", 0, NULL, 1002, 1002, true},
    {"length 2^63", OK101 "\r\n", F("\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00"), true, "", 0, NULL,
     1002, 1002, true},
    {"wrong accept",
     "101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
     "Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
     NULL, 0, false, "", 0, NULL, 0, 1006, true},
    {"subprotocol not offered", OK101 "Sec-WebSocket-Protocol: other\r\n\r\n", NULL, 0, false, "",
     0, NULL, 0, 1006, true},
    {"extension not offered", OK101 "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", NULL, 0,
     false, "", 0, NULL, 0, 1006, true},
    /* Sec-WebSocket-Extensions on several lines is one list (RFC 6455
     * section 9.1, erratum 3433): the extension on a second line is agreed
     * (the compressed "Hello" of RFC 7692 section 7.2.3.1 decodes), and one
     * that was not offered on a second line fails (section 4.1). */
    {"deflate offered: the extension on a second line",
     OK101 "Sec-WebSocket-Extensions:\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
     F("\xc1\x07\xf2\x48\xcd\xc9\xc9\x07\x00\x88\x00"), true, "Hello|", 0, NULL, 0, 1005, false},
    {"deflate offered: an unoffered extension on a second line",
     OK101 "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: "
           "x-webkit-other\r\n\r\n",
     NULL, 0, false, "", 0, NULL, 0, 1006, true},
    {"deflate offered: permessage-deflate twice over two lines",
     OK101 "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: "
           "permessage-deflate; server_no_context_takeover\r\n\r\n",
     NULL, 0, false, "", 0, NULL, 0, 1006, true},
    /* Sections 11.3.3 and 11.3.4: at most once in a response. */
    {"Sec-WebSocket-Accept twice", OK101 "Sec-WebSocket-Accept: %s\r\n\r\n", NULL, 0, false, "", 0,
     NULL, 0, 1006, true},
    {"Sec-WebSocket-Protocol twice",
     OK101 "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n\r\n", NULL, 0,
     false, "", 0, NULL, 0, 1006, true},
    {"redirect not followed", "302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
     NULL, 0, false, "", 0, NULL, 0, 1006, true},
    {"no Upgrade",
     "101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", NULL, 0,
     false, "", 0, NULL, 0, 1006, true},
    /* RFC 9110 section 5.3: a list field split over several lines is one
     * list, so the upgrade option on a second Connection line counts (only
     * the first line was read), and so does websocket in a second Upgrade. */
    {"Connection split over two lines",
     "101 Switching Protocols\r\nUpgrade: h2c\r\nUpgrade: websocket\r\nConnection: "
     "keep-alive\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
     F("\x81\x02hi\x88\x02\x03\xe8"), true, "hi|", 0, NULL, 1000, 1000, false},
    {"silence: handshake timeout", NULL, NULL, 0, false, "", 0, NULL, 0, 1006, false},
    {0}};

static int lfd, port;
static atomic_int cur = -1, srv_done, srv_fail;

/* Reads the client's next frame on fd; returns its opcode (-1: eof). */
static int read_client_frame(int fd, unsigned char *p, size_t cap, size_t *n, bool *masked)
{
    unsigned char h0;
    if (recv(fd, &h0, 1, MSG_PEEK) <= 0)
        return -1;
    unsigned char hb[2];
    if (recv(fd, hb, 2, MSG_PEEK) == 2)
        *masked = hb[1] & 0x80;
    int b0 = ws_raw_read_frame(fd, p, cap, n);
    return b0 < 0 ? -1 : (b0 & 0x0F);
}

static void *server_main(void *arg)
{
    (void)arg;
    for (int i = 0; cases[i].name; i++) {
        const case_t *c = &cases[i];
        int fd = accept(lfd, NULL, NULL);
        CHECK(fd >= 0);
        struct timeval tv = {3, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char req[2048];
        size_t n = 0;
        while (n < sizeof req - 1) {
            ssize_t k = recv(fd, req + n, sizeof req - 1 - n, 0);
            CHECK(k > 0);
            n += (size_t)k;
            req[n] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        CHECK(strncmp(req, "GET /chat?room=1 HTTP/1.1\r\n", 27) == 0);
        CHECK(strstr(req, "\r\nX-Extra: yes\r\n") != NULL);
        CHECK(strstr(req, "\r\nSec-WebSocket-Protocol: chat, superchat\r\n") != NULL);
        const char *k = strstr(req, "Sec-WebSocket-Key: ");
        CHECK(k != NULL);
        char acc[29];
        loom__ws_accept_key(k + 19, 24, acc);
        if (c->answer == NULL) {
            /* Silence until the client gives up. */
            char b;
            CHECK(recv(fd, &b, 1, 0) <= 0);
            close(fd);
            srv_done++;
            continue;
        }
        char out[1024];
        int hl = snprintf(out, sizeof out, "HTTP/1.1 ");
        hl += snprintf(out + hl, sizeof out - (size_t)hl, c->answer, acc, acc); /* at most 2 %s */
        CHECK((size_t)hl + c->frames_len < sizeof out);
        if (c->frames_len)
            memcpy(out + hl, c->frames, c->frames_len);
        ws_raw_send(fd, out, (size_t)hl + c->frames_len);
        unsigned char p[256];
        size_t pn;
        bool masked = false;
        if (c->reply_op) {
            int op = read_client_frame(fd, p, sizeof p, &pn, &masked);
            if (op != c->reply_op || !masked || pn != strlen(c->reply) ||
                memcmp(p, c->reply, pn) != 0) {
                fprintf(stderr, "%s: reply frame %d (masked %d) \"%.*s\"\n", c->name, op, masked,
                        (int)pn, p);
                srv_fail++;
            }
        }
        int op;
        while ((op = read_client_frame(fd, p, sizeof p, &pn, &masked)) >= 0 && op != 8)
            ;
        int code = op == 8 ? (pn >= 2 ? p[0] << 8 | p[1] : 1005) : 0;
        if (c->client_close && code != c->client_close) {
            fprintf(stderr, "%s: the client's close code %d, expected %d\n", c->name, code,
                    c->client_close);
            srv_fail++;
        }
        if (op == 8 && !masked) {
            fprintf(stderr, "%s: unmasked client close\n", c->name);
            srv_fail++;
        }
        close(fd);
        srv_done++;
    }
    return NULL;
}

static int opened, closed, close_code, nerr;
static char got[256];
static size_t got_len;

static void on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    CHECK_STR(loom_ws_protocol(ws),
              cases[cur].answer && strstr(cases[cur].answer, "chat") ? "chat" : "");
    opened++;
}

static void on_message(loom_ws_t *ws, loom_ws_type_t t, const char *m, size_t n, void *d)
{
    (void)ws, (void)t, (void)d;
    CHECK(got_len + n + 1 < sizeof got);
    memcpy(got + got_len, m, n);
    got_len += n;
    got[got_len++] = '|';
}

static char last_msg[512];
static int nevents;

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    nevents++;
    snprintf(last_msg, sizeof last_msg, "%s", ev->msg);
    if (ev->kind == LOOM_EV_WS_ERROR)
        nerr++;
}

static void on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    closed++;
    close_code = code;
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(lfd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    port = ntohs(a.sin_port);
    CHECK(listen(lfd, 16) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, server_main, NULL) == 0);

    loom_loop_t *loop = test_loop_new();
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/chat?room=1", port);
    static const char *const protos[] = {"chat", "superchat", NULL};
    static const char *const hdrs[] = {"X-Extra", "yes", NULL};
    loom_ws_opts o = {.on_open = on_open,
                      .on_message = on_message,
                      .on_event = on_event,
                      .on_close = on_close,
                      .protocols = protos,
                      .headers = hdrs,
                      .handshake_timeout_ms = 200,
                      .close_timeout_ms = 500};
    for (int i = 0; cases[i].name; i++) {
        const case_t *c = &cases[i];
        cur = i;
        opened = closed = nerr = 0;
        got_len = 0;
        /* The cases named so offer permessage-deflate. */
        o.deflate = strncmp(c->name, "deflate offered: ", 17) == 0;
        CHECK_OK(loom_ws_connect(loop, url, &o, NULL));
        CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
        while (srv_done <= i)
            usleep(1000);
        int bad = srv_fail;
        if (opened != c->open || closed != 1 || close_code != c->code || (nerr > 0) != c->err ||
            got_len != strlen(c->msgs) || memcmp(got, c->msgs, got_len) != 0 || bad) {
            fprintf(stderr,
                    "%s: open %d closed %d code %d errors %d messages \"%.*s\" server "
                    "failures %d\n",
                    c->name, opened, closed, close_code, nerr, (int)got_len, got, bad);
            exit(1);
        }
    }
    pthread_join(th, NULL);
    close(lfd);

    /* Nobody listens any more: the refused connection's event names the
     * host and port asked for (once: the connect's message names them
     * already), before any peer address exists. */
    nevents = closed = 0;
    CHECK_OK(loom_ws_connect(loop, url, &o, NULL));
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    CHECK_EQ(nevents, 1);
    CHECK_EQ(closed, 1);
    CHECK_EQ(close_code, 1006);
    char want[96];
    snprintf(want, sizeof want, "websocket: connect to 127.0.0.1:%d refused", port);
    if (strcmp(last_msg, want) != 0) {
        fprintf(stderr, "refused: \"%s\", want \"%s\"\n", last_msg, want);
        exit(1);
    }
    test_loop_free_clean(loop);
    return 0;
}
