/* loom-chat's HTTP protocol, without a browser: runs the built binary and
 * talks to it over plain blocking sockets.
 *
 * Checks the page and its assets (types, ETag and 304, 404, 405), that a
 * poll with nothing new is held and answered when a message is posted, that
 * a held poll is answered empty after the poll timeout, that a client going
 * away is noticed (the request dropped through on_close), input validation,
 * JSON escaping, the bounded history, restart detection through `boot`, and
 * the WebSocket transport (/api/ws: the history on open, a message sent on
 * the socket answered {"sent": N}, published back to the socket and seen by
 * a poll; the live panel's /api/stats counting the socket; 405 and a refused
 * non-upgrade), and the graceful close on SIGINT: held polls answered with
 * "closing": true and "Connection: close", then exit status 0 (under ASan:
 * no leaks).
 *
 * Runs once per backend: loom-chat inherits $LOOM_BACKEND.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

static pid_t server_pid;
static int server_port;
static char log_path[] = "/tmp/loom-chat-log-XXXXXX";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000 + (double)ts.tv_nsec / 1e6;
}

/* Starts loom-chat on a free port; its stderr (--verbose) goes to a file. */
static void server_start(const char *binary)
{
    int out[2];
    CHECK(pipe(out) == 0);
    int logfd = mkstemp(log_path);
    CHECK(logfd >= 0);
    server_pid = fork();
    CHECK(server_pid >= 0);
    if (server_pid == 0) {
        /* test_timeout() ends the test with _exit(): take the server along. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(out[1], 1);
        dup2(logfd, 2);
        close(out[0]);
        close(out[1]);
        close(logfd);
        execl(binary, binary, "--port", "0", "--poll-timeout", "3000", "--verbose", (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(logfd);
    char banner[256];
    size_t len = 0;
    while (len < sizeof banner - 1 && !memchr(banner, '\n', len)) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        CHECK(poll(&p, 1, 5000) == 1);
        ssize_t n = read(out[0], banner + len, sizeof banner - 1 - len);
        CHECK(n > 0);
        len += (size_t)n;
    }
    banner[len] = '\0';
    close(out[0]);
    const char *p = strstr(banner, "http://127.0.0.1:");
    CHECK(p != NULL);
    server_port = atoi(p + strlen("http://127.0.0.1:"));
    CHECK(server_port > 0);
}

static int conn_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)server_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void conn_send(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        CHECK(n > 0);
        data += n;
        len -= (size_t)n;
    }
}

typedef struct {
    int status;
    char head[4096]; /* status line and fields, NUL-terminated */
    char body[256 * 1024];
    size_t len;
    size_t extra; /* bytes read past this response, left at body[len..] */
} resp_t;

static resp_t R; /* big: static */

/* Reads one response (with Content-Length, as loom-chat always sends;
 * none is read after a HEAD, a 304 or a 204) within `ms`. Returns false if
 * none came in time. */
static bool resp_read_ex(int fd, resp_t *r, int ms, bool head_request)
{
    static char buf[sizeof R.head + sizeof R.body];
    size_t have = 0, head_len = 0, need = 0;
    double end = now_ms() + ms;
    memset(r->head, 0, sizeof r->head);
    for (;;) {
        if (head_len == 0) {
            char *e = memmem(buf, have, "\r\n\r\n", 4);
            if (e) {
                head_len = (size_t)(e - buf) + 4;
                CHECK(head_len < sizeof r->head);
                memcpy(r->head, buf, head_len);
                r->head[head_len] = '\0';
                r->status = atoi(r->head + 9);
                const char *cl = strcasestr(r->head, "\r\nContent-Length:");
                need = cl ? strtoul(cl + 17, NULL, 10) : 0;
                if (head_request || r->status == 304 || r->status == 204)
                    need = 0;
                CHECK(need < sizeof r->body);
            }
        }
        if (head_len && have >= head_len + need) {
            memcpy(r->body, buf + head_len, need);
            r->body[need] = '\0';
            r->len = need;
            r->extra = have - head_len - need;
            return true;
        }
        int left = (int)(end - now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, left);
        if (pr == 0)
            return false;
        CHECK(pr == 1);
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        CHECK(n > 0);
        have += (size_t)n;
    }
}

static bool resp_read(int fd, resp_t *r, int ms)
{
    return resp_read_ex(fd, r, ms, false);
}

/* One request on a fresh connection; the response must come within 3 s. */
static resp_t *fetch(const char *method, const char *target, const char *headers, const char *body)
{
    int fd = conn_open();
    char req[16384];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sContent-Length: %zu\r\n\r\n%s", method,
                     target, headers ? headers : "", body ? strlen(body) : 0, body ? body : "");
    CHECK(n > 0 && (size_t)n < sizeof req);
    conn_send(fd, req, (size_t)n);
    CHECK(resp_read_ex(fd, &R, 3000, strcmp(method, "HEAD") == 0));
    close(fd);
    return &R;
}

static resp_t *post(const char *form)
{
    return fetch("POST", "/api/messages", "Content-Type: application/x-www-form-urlencoded\r\n",
                 form);
}

/* Sends a poll on a new connection and returns the connection. */
static int poll_send(const char *query)
{
    int fd = conn_open();
    char req[512];
    int n = snprintf(req, sizeof req, "GET /api/messages?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     query);
    conn_send(fd, req, (size_t)n);
    return fd;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static long long json_num(const char *body, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\":", key);
    const char *p = strstr(body, k);
    CHECK(p != NULL);
    return strtoll(p + strlen(k), NULL, 10);
}

static bool log_has(const char *text)
{
    FILE *f = fopen(log_path, "r");
    CHECK(f != NULL);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, text) != NULL;
}

static void test_assets(void)
{
    resp_t *r = fetch("GET", "/", NULL, NULL);
    CHECK_EQ(r->status, 200);
    CHECK(strcasestr(r->head, "Content-Type: text/html; charset=utf-8") != NULL);
    CHECK(strstr(r->body, "<title>loom chat</title>") != NULL);
    CHECK(strcasestr(r->head, "Server: loom-chat") != NULL);
    const char *etag = strcasestr(r->head, "\r\nETag: ");
    CHECK(etag != NULL);
    char inm[128];
    int n = snprintf(inm, sizeof inm, "If-None-Match: %.*s\r\n", (int)strcspn(etag + 8, "\r"),
                     etag + 8);
    CHECK(n > 0 && (size_t)n < sizeof inm);
    r = fetch("GET", "/index.html", inm, NULL);
    CHECK_EQ(r->status, 304);
    CHECK_EQ(r->len, 0);

    r = fetch("GET", "/chat.js", NULL, NULL);
    CHECK_EQ(r->status, 200);
    CHECK(strcasestr(r->head, "Content-Type: text/javascript") != NULL);
    CHECK(strstr(r->body, "/api/messages") != NULL);
    r = fetch("HEAD", "/chat.css", NULL, NULL);
    CHECK_EQ(r->status, 200);
    CHECK(strcasestr(r->head, "Content-Type: text/css") != NULL);

    CHECK_EQ(fetch("GET", "/nope", NULL, NULL)->status, 404);
    CHECK_EQ(fetch("GET", "/api/messages/1", NULL, NULL)->status, 404);
    r = fetch("DELETE", "/api/messages", NULL, NULL);
    CHECK_EQ(r->status, 405);
    CHECK(strcasestr(r->head, "Allow: GET, HEAD, POST") != NULL);
    CHECK_EQ(fetch("POST", "/", NULL, "x")->status, 405);
}

static long long test_first_poll(void)
{
    resp_t *r = fetch("GET", "/api/messages", NULL, NULL);
    CHECK_EQ(r->status, 200);
    CHECK(strcasestr(r->head, "Content-Type: application/json") != NULL);
    CHECK(strcasestr(r->head, "Cache-Control: no-store") != NULL);
    CHECK(strstr(r->body, "\"last\":0,\"closing\":false,\"messages\":[]}") != NULL);
    long long boot = json_num(r->body, "boot");
    CHECK(boot > 0);
    CHECK_EQ(fetch("GET", "/api/messages?since=x", NULL, NULL)->status, 400);
    CHECK_EQ(fetch("GET", "/api/messages?since=-1", NULL, NULL)->status, 400);
    return boot;
}

/* A held poll gets the message posted while it waits. */
static void test_long_poll(long long boot)
{
    char q[64];
    snprintf(q, sizeof q, "since=0&boot=%lld", boot);
    int a = poll_send(q), b = poll_send(q);
    CHECK(!resp_read(a, &R, 300)); /* held */

    double t0 = now_ms();
    resp_t *r = post("name=alice&text=hello+there");
    CHECK_EQ(r->status, 201);
    CHECK_STR(r->body, "{\"id\":1}");
    CHECK(resp_read(a, &R, 2500));
    CHECK_EQ(R.status, 200);
    /* Woken by the post, not answered by the poll timeout (3 s from the
     * poll, at least 2.7 s from t0); loose enough for a loaded machine. */
    CHECK(now_ms() - t0 < 2000);
    CHECK(strstr(R.body, "\"last\":1,") != NULL);
    CHECK(strstr(R.body, "\"name\":\"alice\",\"text\":\"hello there\"}]}") != NULL);
    CHECK(resp_read(b, &R, 2500));
    CHECK(strstr(R.body, "\"text\":\"hello there\"") != NULL);

    /* The connections are kept alive: the next poll on `a` waits again. */
    static const char again[] = "GET /api/messages?since=1 HTTP/1.1\r\nHost: x\r\n\r\n";
    conn_send(a, again, sizeof again - 1);
    CHECK(!resp_read(a, &R, 200));
    CHECK_EQ(post("name=bob&text=second")->status, 201);
    CHECK(resp_read(a, &R, 2500));
    CHECK_EQ(count(R.body, "{\"id\":"), 1);
    CHECK(strstr(R.body, "\"id\":2,") != NULL);
    close(a);
    close(b);

    /* Already newer messages: answered at once. */
    CHECK_EQ(count(fetch("GET", "/api/messages?since=0", NULL, NULL)->body, "{\"id\":"), 2);
}

/* A poll with nothing new is answered empty after the poll timeout (3 s:
 * long, so that the other tests' held polls never meet it on a loaded
 * machine). */
static void test_poll_timeout(void)
{
    int fd = poll_send("since=2");
    double t0 = now_ms();
    CHECK(resp_read(fd, &R, 9000));
    double waited = now_ms() - t0;
    CHECK(waited > 2700 && waited < 8000); /* slack for a loaded machine */
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"last\":2,\"closing\":false,\"messages\":[]}") != NULL);
    close(fd);
}

/* A client that goes away while its poll is held: on_close drops it. */
static void test_client_gone(void)
{
    /* The tag makes the log lines of this poll unique. */
    int fd = poll_send("since=2&tag=gone");
    double end = now_ms() + 3000;
    while (!log_has("/api/messages?since=2&tag=gone: held")) {
        CHECK(now_ms() < end);
        usleep(10 * 1000);
    }
    close(fd);
    end = now_ms() + 3000;
    while (!log_has("GET /api/messages?since=2&tag=gone: client went away")) {
        CHECK(now_ms() < end);
        usleep(20 * 1000);
    }
    /* Nothing is left to answer: the next message goes to nobody. */
    CHECK_EQ(post("name=carol&text=anyone%3F")->status, 201);
}

static void test_validation(void)
{
    resp_t *r = post("name=alice&text=+++");
    CHECK_EQ(r->status, 400);
    CHECK_STR(r->body, "{\"error\":\"text: empty\"}");
    CHECK_EQ(post("name=alice")->status, 400);
    CHECK_EQ(post("text=hi")->status, 400);
    CHECK_EQ(post("name=alice&text=%FF")->status, 400);       /* not UTF-8 */
    CHECK_EQ(post("name=alice&text=%ED%A0%80")->status, 400); /* a surrogate */
    CHECK_EQ(post("name=alice&text=%C0%AF")->status, 400);    /* overlong */
    CHECK_EQ(post("name=alice&text=a%00b")->status, 400);     /* NUL */
    CHECK_EQ(post("name=alice&text=%zz")->status, 400);
    static char big[4096];
    strcpy(big, "name=");
    memset(big + 5, 'n', 65);
    strcpy(big + 70, "&text=x");
    CHECK_EQ(post(big)->status, 400); /* name over 64 bytes */
    r = fetch("POST", "/api/messages", "Content-Type: text/plain\r\n", "name=a&text=b");
    CHECK_EQ(r->status, 415);

    /* Escaping: quotes, backslashes and UTF-8 survive, control characters
     * become spaces, and both ends are trimmed. */
    r = post("name=%C3%A9mile&text=+say+%22hi%22+%5C+%3Cb%3E%0Aok%E2%9C%93+");
    CHECK_EQ(r->status, 201);
    long long id = json_num(r->body, "id");
    char q[64];
    snprintf(q, sizeof q, "/api/messages?since=%lld", id - 1);
    r = fetch("GET", q, NULL, NULL);
    CHECK(strstr(r->body,
                 "\"name\":\"\xC3\xA9mile\",\"text\":\"say \\\"hi\\\" \\\\ <b> ok\xE2\x9C\x93\"") !=
          NULL);
}

/* Only the last 100 messages are kept. */
static void test_history_bound(void)
{
    int fd = conn_open();
    for (int i = 0; i < 110; i++) {
        char body[64], req[256];
        int bl = snprintf(body, sizeof body, "name=bulk&text=message+%d", i);
        int n = snprintf(req, sizeof req,
                         "POST /api/messages HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         "application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
                         bl, body);
        conn_send(fd, req, (size_t)n);
        CHECK(resp_read(fd, &R, 3000));
        CHECK_EQ(R.status, 201);
        CHECK_EQ(R.extra, 0);
    }
    close(fd);
    long long last = json_num(R.body, "id");
    resp_t *r = fetch("GET", "/api/messages", NULL, NULL);
    CHECK_EQ(json_num(r->body, "last"), last);
    CHECK_EQ(count(r->body, "{\"id\":"), 100);
    char first[64];
    snprintf(first, sizeof first, "[{\"id\":%lld,", last - 99);
    CHECK(strstr(r->body, first) != NULL);
    CHECK(strstr(r->body, "\"text\":\"message 109\"}]}") != NULL);
    /* A poll from before the window gets what is left. */
    CHECK_EQ(count(fetch("GET", "/api/messages?since=1", NULL, NULL)->body, "{\"id\":"), 100);
}

/* A client from a previous run of the server (another boot, or ids beyond
 * ours) gets the whole history at once. */
static void test_restart_detection(long long boot)
{
    char q[96];
    snprintf(q, sizeof q, "/api/messages?since=1000000&boot=%lld", boot);
    resp_t *r = fetch("GET", q, NULL, NULL);
    CHECK_EQ(count(r->body, "{\"id\":"), 100);
    long long last = json_num(r->body, "last");
    snprintf(q, sizeof q, "/api/messages?since=%lld&boot=%lld", last, boot + 1);
    r = fetch("GET", q, NULL, NULL);
    CHECK_EQ(count(r->body, "{\"id\":"), 100);
}

/* SIGINT answers the held polls and the server exits cleanly. */
/* Reads exactly n bytes within `ms`. */
static void read_exact(int fd, void *buf, size_t n, int ms)
{
    double end = now_ms() + ms;
    size_t have = 0;
    while (have < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now_ms());
        CHECK(left > 0 && poll(&p, 1, left) == 1);
        ssize_t r = read(fd, (char *)buf + have, n - have);
        CHECK(r > 0);
        have += (size_t)r;
    }
}

/* Reads one unfragmented, unmasked text frame from the server into buf
 * (NUL-terminated). */
static void ws_read_text(int fd, char *buf, size_t size)
{
    unsigned char h[4];
    read_exact(fd, h, 2, 3000);
    CHECK_EQ(h[0], 0x81); /* FIN + text */
    CHECK((h[1] & 0x80) == 0);
    size_t len = h[1] & 0x7f;
    if (len == 126) {
        read_exact(fd, h + 2, 2, 3000);
        len = (size_t)h[2] << 8 | h[3];
    }
    CHECK(len < size);
    read_exact(fd, buf, len, 3000);
    buf[len] = '\0';
}

/* Sends a masked text frame (payload < 126 bytes). */
static void ws_send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    CHECK(len < 126);
    unsigned char f[2 + 4 + 126];
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    f[0] = 0x81;
    f[1] = (unsigned char)(0x80 | len);
    memcpy(f + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        f[6 + i] = (unsigned char)text[i] ^ mask[i & 3];
    conn_send(fd, (const char *)f, 6 + len);
}

static void test_websocket(void)
{
    CHECK_EQ(fetch("POST", "/api/ws", NULL, "x")->status, 405);
    int st = fetch("GET", "/api/ws", NULL, NULL)->status;
    CHECK(st == 426 || st == 400); /* not an upgrade: refused by loom_ws_accept */

    resp_t *r = fetch("GET", "/api/stats", NULL, NULL);
    CHECK_EQ(r->status, 200);
    CHECK(strstr(r->body, "{\"stats\":{\"websocket\":0,") == r->body);
    long long last = json_num(fetch("GET", "/api/messages", NULL, NULL)->body, "last");

    int fd = conn_open();
    static const char up[] = "GET /api/ws?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n";
    conn_send(fd, up, sizeof up - 1);
    char head[1024];
    size_t hl = 0;
    while (hl < 4 || memcmp(head + hl - 4, "\r\n\r\n", 4) != 0) {
        CHECK(hl < sizeof head - 1);
        read_exact(fd, head + hl, 1, 3000);
        hl++;
    }
    head[hl] = '\0';
    CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
    CHECK(strcasestr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != NULL);

    static char msg[64 * 1024];
    ws_read_text(fd, msg, sizeof msg); /* the history (since=0: all of it) */
    CHECK(strstr(msg, "\"closing\":false,\"messages\":[") != NULL);
    CHECK_EQ(json_num(msg, "last"), last);

    /* A poll held meanwhile sees the message sent on the socket. */
    char q[64];
    snprintf(q, sizeof q, "since=%lld", last);
    int pfd = poll_send(q);
    ws_send_text(fd, "name=sock&text=over+a+websocket");
    /* The published message and the answer, in either order (stats may
     * come in between). */
    bool got_sent = false, got_msg = false;
    for (int i = 0; i < 6 && !(got_sent && got_msg); i++) {
        ws_read_text(fd, msg, sizeof msg);
        if (strstr(msg, "{\"sent\":") == msg) {
            CHECK_EQ(json_num(msg, "sent"), last + 1);
            got_sent = true;
        } else if (strstr(msg, "\"text\":\"over a websocket\"")) {
            CHECK(strstr(msg, "\"name\":\"sock\"") != NULL);
            got_msg = true;
        } else {
            CHECK(strstr(msg, "{\"stats\":") == msg);
        }
    }
    CHECK(got_sent && got_msg);
    CHECK(resp_read(pfd, &R, 3000));
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"text\":\"over a websocket\"") != NULL);
    close(pfd);

    /* A bad message gets an error, and the socket stays open. */
    ws_send_text(fd, "name=sock");
    for (;;) {
        ws_read_text(fd, msg, sizeof msg);
        if (strstr(msg, "{\"stats\":") != msg)
            break;
    }
    CHECK(strcmp(msg, "{\"error\":\"text: missing field\"}") == 0);

    /* The live panel counts the socket (the figures are rendered each second). */
    bool counted = false;
    for (int i = 0; i < 30 && !counted; i++) {
        r = fetch("GET", "/api/stats", NULL, NULL);
        counted = strstr(r->body, "\"websocket\":1,") != NULL;
        if (!counted)
            usleep(100 * 1000);
    }
    CHECK(counted);
    close(fd);
    double end = now_ms() + 3000;
    while (!log_has("websocket closed") && now_ms() < end)
        usleep(20 * 1000);
    CHECK(log_has("websocket closed"));
}

static void test_sigint(void)
{
    resp_t *r = fetch("GET", "/api/messages", NULL, NULL);
    char q[64];
    snprintf(q, sizeof q, "since=%lld", json_num(r->body, "last"));
    int a = poll_send(q), b = poll_send(q);
    CHECK(!resp_read(a, &R, 200));
    CHECK_EQ(kill(server_pid, SIGINT), 0);
    CHECK(resp_read(a, &R, 2000));
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"closing\":true") != NULL);
    CHECK(strcasestr(R.head, "Connection: close") != NULL);
    CHECK(resp_read(b, &R, 2000));
    CHECK(strstr(R.body, "\"closing\":true") != NULL);
    close(a);
    close(b);

    int status;
    double end = now_ms() + 5000;
    pid_t w;
    while ((w = waitpid(server_pid, &status, WNOHANG)) == 0) {
        CHECK(now_ms() < end);
        usleep(20 * 1000);
    }
    CHECK_EQ(w, server_pid);
    server_pid = 0;
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK(log_has("loom-chat: closed"));
}

static void cleanup(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    unlink(log_path);
}

int main(void)
{
    test_timeout(25);
    const char *binary = LOOM_BINARY_DIR "/examples/loom-chat";
    if (access(binary, X_OK) != 0)
        TEST_SKIP("%s not built (LOOM_BUILD_EXAMPLES=OFF?)", binary);
    signal(SIGPIPE, SIG_IGN);
    atexit(cleanup);
    server_start(binary);

    test_assets();
    long long boot = test_first_poll();
    test_long_poll(boot);
    test_poll_timeout();
    test_client_gone();
    test_websocket();
    test_validation();
    test_history_bound();
    test_restart_detection(boot);
    test_sigint();
    return 0;
}
