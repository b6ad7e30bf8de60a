/* test_http_tls_tools: the example programs over TLS, as separate processes.
 *  - loom-hello --tls-cert/--tls-key through curl (a GET, two URLs on one
 *    connection, curl refusing it without the CA);
 *  - loom-http-echo --tls-cert/--tls-key through curl (a ~1 MiB upload,
 *    buffered and --stream);
 *  - loom-chat --tls-cert/--tls-key through curl (its page);
 *  - loom-fetch against loom-hello: --cacert, -k, -v's TLS lines, a
 *    certificate that does not verify (exit 60, the message names host and
 *    reason), a bad --cacert file, and load mode over https.
 * Skipped when curl or the binaries are missing. LOOM_TEST_NO_TRANSPORT: the
 * servers are other processes. */
#include <signal.h>
#include <sys/wait.h>

#include "../tls/tls_test_util.h"
#include "test_http_server_util.h"

static pid_t start(const char *name, int *port, const char *more)
{
    const char *extra[] = {
        "--tls-cert", tls_path("server.pem"), "--tls-key", tls_path("server.key"), more, NULL};
    pid_t pid = hs_start_binary(name, extra, 2, port);
    if (pid == 0)
        TEST_SKIP("%s is not built", name);
    return pid;
}

/* loom-chat prints "listening on https://127.0.0.1:PORT/" on stdout. */
static pid_t start_chat(int *port)
{
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/examples/loom-chat", LOOM_BINARY_DIR);
    if (access(exe, X_OK) != 0)
        TEST_SKIP("loom-chat is not built");
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(exe, exe, "--port", "0", "--tls-cert", tls_path("server.pem"), "--tls-key",
              tls_path("server.key"), (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[512];
    size_t n = 0;
    while (n < sizeof line - 1 && read(pfd[0], line + n, 1) == 1 && line[n] != '\n')
        n++;
    line[n] = '\0';
    close(pfd[0]);
    const char *p = strstr(line, "https://127.0.0.1:");
    CHECK(p != NULL);
    *port = atoi(p + 18);
    CHECK(*port > 0);
    return pid;
}

static void stop(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid);
}

int main(void)
{
    test_timeout(120);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    loom_loop_t *loop = test_loop_new();
    char ca[200], res[64], u[128], u2[128], out[16384];
    snprintf(ca, sizeof ca, "%s", tls_path("ca.pem"));

    /* loom-hello over https. */
    int port;
    pid_t hello = start("loom-hello", &port, NULL);
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u, sizeof u, "https://localhost:%d/", port);
    snprintf(u2, sizeof u2, "https://localhost:%d/two", port);
    char *c1[] = {
        "curl",      "-s", "--cacert", ca,
        "--resolve", res,  "-w",       "|%{http_code} %{num_connects} %{ssl_verify_result}\n",
        u,           u2,   NULL};
    CHECK_EQ(hs_run_child(loop, c1, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "omglolwtf|200 1 0\nomglolwtf|200 0 0\n");
    char *c2[] = {"curl", "-s", "--resolve", res, u, NULL};
    CHECK_EQ(hs_run_child(loop, c2, NULL, 0, out, sizeof out, 20000), 60);

    /* loom-fetch against it. */
    char fetch[300];
    snprintf(fetch, sizeof fetch, "%s/examples/loom-fetch", LOOM_BINARY_DIR);
    char *f1[] = {fetch, "--cacert", ca, u, NULL};
    CHECK_EQ(hs_run_child(loop, f1, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "omglolwtf");
    char *f2[] = {fetch, "-v", "--cacert", ca, u, NULL};
    CHECK_EQ(hs_run_child(loop, f2, NULL, 0, out, sizeof out, 20000), 0);
    CHECK(strstr(out, "* TLS: TLSv1.3, cipher TLS_") != NULL);
    /* loom-fetch offers h2 and http/1.1; loom-hello prefers h2 */
    CHECK(strstr(out, ", ALPN h2\n") != NULL);
    CHECK(strstr(out, "* server certificate: ") != NULL);
    CHECK(strstr(out, "CN=localhost\n") != NULL);
    CHECK(strstr(out, "< HTTP/2 200") != NULL);
    char *f2b[] = {fetch, "-v", "--http1.1", "--cacert", ca, u, NULL};
    CHECK_EQ(hs_run_child(loop, f2b, NULL, 0, out, sizeof out, 20000), 0);
    CHECK(strstr(out, ", ALPN http/1.1\n") != NULL);
    CHECK(strstr(out, "< HTTP/1.1 200 OK\n") != NULL);
    char *f3[] = {fetch, u, NULL}; /* the system's store does not know the test CA */
    CHECK_EQ(hs_run_child(loop, f3, NULL, 0, out, sizeof out, 20000), 60);
    char want[200];
    snprintf(want, sizeof want,
             "loom-fetch: tls verify error: certificate verify failed for localhost:%d: ", port);
    CHECK(strstr(out, want) == out);
    char *f4[] = {fetch, "-k", "-v", u, NULL};
    CHECK_EQ(hs_run_child(loop, f4, NULL, 0, out, sizeof out, 20000), 0);
    CHECK(strstr(out, "(not verified)") != NULL);
    CHECK(strstr(out, "omglolwtf") != NULL);
    char *f5[] = {fetch, "--insecure", u, NULL};
    CHECK_EQ(hs_run_child(loop, f5, NULL, 0, out, sizeof out, 20000), 0);
    char *f6[] = {fetch, "--cacert", "/nonexistent/ca.pem", u, NULL};
    CHECK_EQ(hs_run_child(loop, f6, NULL, 0, out, sizeof out, 20000), 1);
    CHECK(strstr(out, "/nonexistent/ca.pem") != NULL);
    char *f7[] = {fetch, "--cacert", ca, "--parallel", "8", "--requests", "400", u, NULL};
    CHECK_EQ(hs_run_child(loop, f7, NULL, 0, out, sizeof out, 30000), 0);
    CHECK(strstr(out, "requests: 400,") == out);
    CHECK(strstr(out, "errors: 0, connections: 1") != NULL); /* h2 multiplexes */
    stop(hello);

    /* loom-http-echo over https, buffered and streaming: ~1 MiB up and back. */
    char file[200], back[200], data[210], cmp[600];
    snprintf(file, sizeof file, "%s/up.bin", tls_certs());
    snprintf(back, sizeof back, "%s/back.bin", tls_certs());
    FILE *fp = fopen(file, "wb");
    CHECK(fp != NULL);
    for (int i = 0; i < (1 << 20) - 100; i++)
        fputc('a' + i % 26, fp);
    fclose(fp);
    snprintf(data, sizeof data, "@%s", file);
    snprintf(cmp, sizeof cmp, "cmp -s '%s' '%s'", file, back);
    for (int stream = 0; stream < 2; stream++) {
        pid_t echo = start("loom-http-echo", &port, stream ? "--stream" : NULL);
        snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
        snprintf(u, sizeof u, "https://localhost:%d/echo", port);
        char *e1[] = {"curl", "-s", "--cacert", ca,   "--resolve",    res, "--data-binary",
                      data,   "-o", back,       "-w", "%{http_code}", u,   NULL};
        CHECK_EQ(hs_run_child(loop, e1, NULL, 0, out, sizeof out, 30000), 0);
        CHECK_STR(out, "200");
        CHECK_EQ(system(cmp), 0);
        stop(echo);
    }

    /* loom-chat over https: its page. */
    pid_t chat = start_chat(&port);
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u, sizeof u, "https://localhost:%d/", port);
    char *h1[] = {"curl", "-s", "--cacert", ca, "--resolve", res, "-w", "|%{http_code}", u, NULL};
    CHECK_EQ(hs_run_child(loop, h1, NULL, 0, out, sizeof out, 20000), 0);
    CHECK(strstr(out, "<html") != NULL || strstr(out, "<!DOCTYPE") != NULL ||
          strstr(out, "<!doctype") != NULL);
    CHECK(strstr(out, "|200") != NULL);
    stop(chat);

    test_loop_free_clean(loop);
    printf("http tls tools: ok\n");
    return 0;
}
