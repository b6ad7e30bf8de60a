/* test_h2_server_semantics: request semantics that must not depend on the
 * protocol, run through a version parameter (curl --http1.1, then
 * --http2-prior-knowledge against the same h2c-enabled server, one table
 * of cases, the same expected output): GET, HEAD (length, no body), a
 * buffered POST echoed with its method and length, query parameters and
 * percent-decoding, 204 and 304 without a body, a deferred answer, a
 * streamed answer without a length, SSE, an interim 103 before the final
 * answer, and on_body with pause/resume over a 300 KiB upload. Only
 * loom_http_req_version() differs. LOOM_TEST_NO_BACKEND: it is about the
 * protocols (26 curl runs); test_h2_server_curl covers the backends. */
#include "test_http_server_util.h"

static int want_version;

static void later_cb(loom_timer_t *t, void *data)
{
    (void)t;
    hs_reply(data, "deferred");
}

static void resume_cb(loom_timer_t *t, void *data)
{
    (void)t;
    if (!loom_http_req_closed(data))
        CHECK_OK(loom_http_req_resume(data));
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_EQ(loom_http_req_version(req), want_version);
    const char *path = loom_http_req_path(req, NULL);
    char buf[256];
    if (strcmp(path, "/") == 0) {
        hs_reply(req, "hello");
    } else if (strcmp(path, "/echo") == 0 || strcmp(path, "/up") == 0) {
        loom_http_req_set_data(req, (void *)0); /* answered at the body's end */
    } else if (strcmp(path, "/q") == 0) {
        CHECK(loom_http_req_query_param(req, "name", buf, sizeof buf) >= 0);
        hs_reply(req, buf);
    } else if (strncmp(path, "/path", 5) == 0) {
        CHECK(loom_http_req_path_decoded(req, buf, sizeof buf) >= 0);
        hs_reply(req, buf);
    } else if (strcmp(path, "/204") == 0) {
        CHECK_OK(loom_http_respond(req, 204, NULL, NULL, 0));
    } else if (strcmp(path, "/304") == 0) {
        CHECK_OK(loom_http_respond(req, 304, (const char *[]){"ETag", "\"x\"", NULL}, NULL, 0));
    } else if (strcmp(path, "/defer") == 0) {
        CHECK_OK(loom_delay(loom_http_req_loop(req), 30, later_cb, req, NULL));
    } else if (strcmp(path, "/stream") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        for (int i = 0; i < 3; i++)
            CHECK(loom_http_response_write(req, "part,", 5) >= 0);
        CHECK_OK(loom_http_response_end(req));
    } else if (strcmp(path, "/sse") == 0) {
        CHECK_OK(loom_http_sse_start(req, NULL));
        CHECK_OK(loom_http_sse_send(req, "e", "d"));
        CHECK_OK(loom_http_response_end(req));
    } else if (strcmp(path, "/early") == 0) {
        CHECK_OK(loom_http_respond_interim(req, 103, (const char *[]){"Link", "</a>", NULL}));
        hs_reply(req, "after 103");
    } else {
        CHECK_OK(loom_http_respond(req, 404, NULL, "no", 2));
    }
}

static int on_body(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    if (strcmp(path, "/echo") != 0 && strcmp(path, "/up") != 0)
        return 0;
    uintptr_t got = (uintptr_t)loom_http_req_data(req);
    if (p == NULL) {
        char len[32];
        snprintf(len, sizeof len, "%lu", (unsigned long)got);
        const char *h[] = {"X-Len", len, "X-Method", loom_http_req_method_str(req, NULL), NULL};
        CHECK_OK(loom_http_respond(req, 200, h, "done", 4));
        return 0;
    }
    loom_http_req_set_data(req, (void *)(got + n));
    if (strcmp(path, "/up") == 0) {
        CHECK_OK(loom_delay(loom_http_req_loop(req), 1, resume_cb, req, NULL));
        return LOOM_HTTP_PAUSE;
    }
    return 0;
}

typedef struct {
    const char *path;
    const char *const extra[6]; /* curl arguments before the URL */
    const char *want;           /* body then "|" and the -w fields */
} hcase;

static const hcase cases[] = {
    {"/", {NULL}, "hello|200 5 "},
    {"/", {"-I", NULL}, "|200 0 "},
    {"/echo", {"--data-binary", "abc=1&x", NULL}, "done|200 4 7 POST"},
    {"/q?name=a%20b+c", {NULL}, "a b c|200 5 "},
    {"/path/%41%2Fz", {NULL}, "/path/A/z|200 9 "},
    {"/204", {NULL}, "|204 0 "},
    {"/304", {NULL}, "|304 0 "},
    {"/defer", {NULL}, "deferred|200 8 "},
    {"/stream", {NULL}, "part,part,part,|200 15 "},
    {"/sse", {NULL}, "event: e\ndata: d\n\n|200 18 "},
    {"/early", {NULL}, "after 103|200 9 "},
    {"/up", {"--data-binary", "@UPLOAD", NULL}, "done|200 4 307200 POST"},
    {"/nope", {NULL}, "no|404 2 "},
};

int main(void)
{
    test_timeout(120);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    char upload[64];
    snprintf(upload, sizeof upload, "/tmp/loom-h2sem-%d.bin", (int)getpid());
    FILE *f = fopen(upload, "wb");
    CHECK(f != NULL);
    for (int i = 0; i < 300 * 1024; i++)
        fputc('a' + i % 26, f);
    fclose(f);
    char data[80];
    snprintf(data, sizeof data, "@%s", upload);

    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_body = on_body, .http2 = {.h2c = true}},
                              &srv));
    int port = loom_http_server_port(srv);
    static const struct {
        const char *flag;
        int version;
    } versions[] = {{"--http1.1", 11}, {"--http2-prior-knowledge", 20}};
    for (size_t v = 0; v < 2; v++) {
        want_version = versions[v].version;
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            const hcase *c = &cases[i];
            char url[160], out[1024];
            snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, c->path);
            char *argv[16];
            int k = 0;
            argv[k++] = "curl";
            argv[k++] = "-s";
            argv[k++] = (char *)versions[v].flag;
            argv[k++] = "-w";
            argv[k++] = "|%{http_code} %{size_download} %header{x-len} %header{x-method}";
            for (int j = 0; c->extra[j]; j++)
                argv[k++] = strcmp(c->extra[j], "@UPLOAD") == 0 ? data : (char *)c->extra[j];
            argv[k++] = url;
            argv[k] = NULL;
            CHECK_EQ(hs_run_child(loop, argv, NULL, 0, out, sizeof out, 20000), 0);
            /* -I prints the head: keep what follows it. */
            const char *o = strstr(out, "\r\n\r\n") ? strstr(out, "\r\n\r\n") + 4 : out;
            /* An empty X-Len / X-Method leaves "a  " or "a " at the end. */
            char got[1024];
            snprintf(got, sizeof got, "%s", o);
            size_t gl = strlen(got);
            while (gl && got[gl - 1] == ' ')
                got[--gl] = '\0';
            char want[256];
            snprintf(want, sizeof want, "%s", c->want);
            size_t wl = strlen(want);
            while (wl && want[wl - 1] == ' ')
                want[--wl] = '\0';
            if (strcmp(got, want) != 0) {
                fprintf(stderr, "%s %s: got \"%s\", want \"%s\"\n", versions[v].flag, c->path, got,
                        want);
                CHECK(0);
            }
        }
    }
    unlink(upload);
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("h2 server semantics: ok\n");
    return 0;
}
