/* test_http_client_retry.c - the retry rule (RFC 9110 section 9.2.2): a
 * request that fails on a reused connection before any byte of the answer
 * is sent again only if its method is idempotent, or if the caller set
 * retry_non_idempotent. The server reads the POST in full and closes without
 * answering: by default it sees the POST exactly once and the caller gets an
 * http error event naming the server and why nothing was retried. */
#include "hc_test.h"

static atomic_int unsafe_seen; /* POST and PUT requests read, all connections */
static atomic_int drop_next;   /* close after reading the next POST or PUT */

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        if (rd->req.method == LOOM_HTTP_METHOD_POST || rd->req.method == LOOM_HTTP_METHOD_PUT) {
            atomic_fetch_add(&unsafe_seen, 1);
            if (atomic_exchange(&drop_next, 0))
                break; /* read it all, answer nothing, close */
        }
        char buf[256];
        int hl = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s",
                          rd->body_len, rd->body);
        hc_write(fd, buf, (size_t)hl);
    }
    free(rd->body);
    free(rd);
}

/* A GET that leaves a keep-alive connection in the pool, then `method` on it. */
static void warm_then(loom_loop_t *loop, const char *base, const char *method, bool opt_in,
                      hc_result *r)
{
    char u[128];
    snprintf(u, sizeof u, "%s/warm", base);
    hc_result w = {0};
    hc_get(loop, u, &w, NULL);
    hc_run_until(loop, &w.done, 5000);
    CHECK_EQ(w.done, 1);
    hc_result_free(&w);
    atomic_store(&drop_next, 1);
    snprintf(u, sizeof u, "%s/submit", base);
    memset(r, 0, sizeof *r);
    hc_get(loop, u, r,
           &(loom_http_request_opts){
               .method = method, .body = "x=1", .body_len = 3, .retry_non_idempotent = opt_in});
    hc_run_until(loop, &r->done, 5000);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", peer.port);
    loom_loop_t *loop = test_loop_new();
    loom_http_client_stats_t st;
    hc_result r;

    /* A POST: sent once, an error event, no second connection. */
    warm_then(loop, base, "POST", false, &r);
    if (r.done != 2 || r.ev_kind != LOOM_EV_HTTP_ERROR || r.ev_code != LOOM_EOF ||
        strstr(r.msg, "connection closed by 127.0.0.1:") == NULL ||
        strstr(r.msg, "POST is not retried") == NULL) {
        fprintf(stderr, "POST: done %d kind %d code %s msg \"%s\"\n", r.done, r.ev_kind,
                loom_err_name(r.ev_code), r.msg);
        exit(1);
    }
    hc_result_free(&r);
    CHECK_EQ(atomic_load(&unsafe_seen), 1);
    CHECK_EQ(atomic_load(&peer.accepted), 1);
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.retries, 0);

    /* The caller opts in: sent again on a new connection, answered. */
    atomic_store(&unsafe_seen, 0);
    warm_then(loop, base, "POST", true, &r);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "x=1");
    CHECK(!r.reused);
    hc_result_free(&r);
    CHECK_EQ(atomic_load(&unsafe_seen), 2);
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.retries, 1);

    /* PUT is idempotent: retried by default. */
    atomic_store(&unsafe_seen, 0);
    warm_then(loop, base, "PUT", false, &r);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    hc_result_free(&r);
    CHECK_EQ(atomic_load(&unsafe_seen), 2);
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.retries, 2);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client retry: ok\n");
    return 0;
}
