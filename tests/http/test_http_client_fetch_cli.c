/* test_http_client_fetch_cli.c - loom-fetch's curl habits, running the
 * built binary against a local peer: --help lists every option on stdout
 * and exits 0; -v shows the request ("> ") and response ("< ") heads on
 * stderr; a URL without a scheme is http://; a malformed URL is named with
 * what is wrong (exit 3); -L drops credentials across origins, and
 * --location-trusted keeps them. LOOM_TEST_NO_BACKEND: the binary picks its
 * own backend. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "hc_test.h"

static const char *binary = LOOM_BINARY_DIR "/examples/loom-fetch";
static int port;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128], buf[512];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        if (strcmp(path, "/away") == 0) {
            int hl = snprintf(buf, sizeof buf,
                              "HTTP/1.1 302 Found\r\nLocation: http://localhost:%d/seen\r\n"
                              "Content-Length: 0\r\n\r\n",
                              port);
            hc_write(fd, buf, (size_t)hl);
            continue;
        }
        const char *auth = hc_req_header(rd, "authorization");
        char body[256];
        int bl = snprintf(body, sizeof body, "path=%s auth=%s\n", path, auth ? auth : "-");
        int hl =
            snprintf(buf, sizeof buf,
                     "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nX-Test: yes\r\n\r\n%s", bl, body);
        hc_write(fd, buf, (size_t)hl);
    }
    free(rd->body);
    free(rd);
}

typedef struct {
    int status; /* exit status, or -1 */
    char out[8192], err[8192];
} run_t;

static void slurp(int fd, char *buf, size_t cap)
{
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
}

/* Runs loom-fetch with argv[1..] (NULL-terminated), at most 10 s. */
static void run(run_t *r, const char *const *args)
{
    char po[64], pe[64];
    snprintf(po, sizeof po, "/tmp/loom-client-fetch-out-%d-XXXXXX", (int)getpid());
    snprintf(pe, sizeof pe, "/tmp/loom-client-fetch-err-%d-XXXXXX", (int)getpid());
    int fo = mkstemp(po), fe = mkstemp(pe);
    CHECK(fo >= 0 && fe >= 0);
    unlink(po);
    unlink(pe);
    const char *argv[16] = {binary};
    int n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(fo, 1);
        dup2(fe, 2);
        execv(binary, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    for (int i = 0; i < 1000; i++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            break;
        if (i == 999) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            st = -1;
        }
        usleep(10000);
    }
    r->status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    slurp(fo, r->out, sizeof r->out);
    slurp(fe, r->err, sizeof r->err);
}

static void expect(const run_t *r, int status, const char *in_out, const char *in_err)
{
    if (r->status != status || (in_out && strstr(r->out, in_out) == NULL) ||
        (in_err && strstr(r->err, in_err) == NULL)) {
        fprintf(stderr,
                "loom-fetch: status %d (want %d)\n--- stdout:\n%s\n--- stderr:\n%s\n--- want "
                "stdout with \"%s\", stderr with \"%s\"\n",
                r->status, status, r->out, r->err, in_out ? in_out : "", in_err ? in_err : "");
        exit(1);
    }
}

int main(void)
{
    test_timeout(60);
    if (access(binary, X_OK) != 0)
        TEST_SKIP("%s not built (LOOM_BUILD_EXAMPLES=OFF?)", binary);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    port = peer.port;
    run_t r;
    char u[128], s[256];

    /* --help: every option, one line each, on stdout. */
    run(&r, (const char *[]){"--help", NULL});
    expect(&r, 0, "usage: loom-fetch URL", NULL);
    CHECK_STR(r.err, "");
    const char *opts[] = {"-X, --request", "-H, --header",  "-d, --data",     "--data-file",
                          "-o, --output",  "--timeout",     "-L, --location", "--location-trusted",
                          "-i, --include", "-v, --verbose", "--parallel",     "--requests",
                          "-h, --help"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        expect(&r, 0, opts[i], NULL);
    /* A usage mistake still goes to stderr with status 2. */
    run(&r, (const char *[]){"--no-such-option", "x", NULL});
    expect(&r, 2, NULL, "unknown option '--no-such-option' (try 'loom-fetch --help')");
    run(&r, (const char *[]){NULL});
    expect(&r, 2, NULL, "usage: loom-fetch URL");

    /* -v: both heads on stderr, the body alone on stdout. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/v", port);
    run(&r, (const char *[]){"-v", u, NULL});
    expect(&r, 0, "path=/v auth=-\n", "> GET /v HTTP/1.1\n");
    snprintf(s, sizeof s, "> Host: 127.0.0.1:%d\n", port);
    expect(&r, 0, NULL, s);
    expect(&r, 0, NULL, "> User-Agent: loom/");
    expect(&r, 0, NULL, "< HTTP/1.1 200 OK\n");
    expect(&r, 0, NULL, "< X-Test: yes\n");
    CHECK(strstr(r.out, "X-Test") == NULL);

    /* No scheme: http://. */
    snprintf(u, sizeof u, "127.0.0.1:%d/plain", port);
    run(&r, (const char *[]){u, NULL});
    expect(&r, 0, "path=/plain auth=-\n", NULL);

    /* Malformed URLs say what is wrong. */
    run(&r, (const char *[]){"http://[::1", NULL});
    expect(&r, 3, NULL, "loom-fetch: bad URL 'http://[::1': missing ]");
    run(&r, (const char *[]){"http://127.0.0.1:70000/", NULL});
    expect(&r, 3, NULL, "port 70000 out of range");
    run(&r, (const char *[]){"http://127.0.0.1:8x/", NULL});
    expect(&r, 3, NULL, "bad port '8x'");
    run(&r, (const char *[]){"http:///path", NULL});
    expect(&r, 3, NULL, "no host");

    /* -L to another origin: the Authorization stays behind, unless trusted. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/away", port);
    run(&r, (const char *[]){"-L", "-H", "Authorization: Bearer X", u, NULL});
    expect(&r, 0, "path=/seen auth=-\n", NULL);
    run(&r, (const char *[]){"--location-trusted", "-H", "Authorization: Bearer X", u, NULL});
    expect(&r, 0, "path=/seen auth=Bearer X\n", NULL);

    /* A refused connection names where. */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(ls, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t alen = sizeof a;
    CHECK(getsockname(ls, (struct sockaddr *)&a, &alen) == 0);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    run(&r, (const char *[]){u, NULL});
    close(ls);
    snprintf(s, sizeof s, "connect to 127.0.0.1:%d refused", ntohs(a.sin_port));
    expect(&r, 1, NULL, s);

    /* Load mode: the stats line names the protocol that answered, and
     * "none" when no request got an answer (it said HTTP/1.1 even when every
     * HTTP/2 request had failed). */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/load", port);
    run(&r, (const char *[]){"--parallel", "2", "--requests", "4", u, NULL});
    expect(&r, 0, "requests: 4,", NULL);
    expect(&r, 0, ", errors: 0, connections: ", NULL);
    expect(&r, 0, ", version: HTTP/1.1\n", NULL);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    const char *const vers[] = {NULL, "--http2-prior-knowledge", "--http1.1"};
    for (int i = 0; i < 3; i++) {
        const char *args[8] = {"--parallel", "2", "--requests", "4"};
        int k = 4;
        if (vers[i])
            args[k++] = vers[i];
        args[k++] = u;
        run(&r, args);
        expect(&r, 1, ", version: none\n", "of 4 requests failed");
    }

    hc_peer_stop(&peer);
    printf("http client fetch cli: ok\n");
    return 0;
}
