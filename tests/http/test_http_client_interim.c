/* test_http_client_interim.c - 1xx answers: a few before the final answer
 * are skipped; they do not extend the first byte timeout (a server sending
 * "100 Continue" every 250 ms is cut off by a 300 ms first byte timeout);
 * and more than 16 before a final answer fail the request with an http
 * error event.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). 1xx answers arrive as interim HEADERS, with the
 * same limit of 16. */
#include "hc_test.h"

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        if (strcmp(path, "/ok") == 0) {
            hc_writes(fd, "HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                          "HTTP/1.1 100 Continue\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/flood") == 0) {
            for (int i = 0; i < 40; i++)
                if (hc_writes(fd, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
                    break;
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/drip") == 0) {
            /* At most 7.5 s, until the client goes away. */
            for (int i = 0; i < 30; i++) {
                if (hc_writes(fd, "HTTP/1.1 100 Continue\r\n\r\n") < 0)
                    break;
                usleep(250000);
            }
            break;
        }
    }
    free(rd->body);
    free(rd);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];
    hc_result r = {0};

    snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", peer.port);
    hc_get(loop, u, &r, &(loom_http_request_opts){.first_byte_timeout_ms = 5000});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);

    snprintf(u, sizeof u, "http://127.0.0.1:%d/flood", peer.port);
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    if (r.done != 2 || r.ev_kind != LOOM_EV_HTTP_ERROR || r.ev_code != LOOM_ETOOMANY ||
        strstr(r.msg, "more than 16 interim (1xx) responses from 127.0.0.1:") == NULL) {
        fprintf(stderr, "flood: done %d kind %d msg \"%s\"\n", r.done, r.ev_kind, r.msg);
        exit(1);
    }
    hc_result_free(&r);

    /* The idle timeout is long; only the first byte deadline can end it
     * before the 17th 1xx, which the server sends after 4 s at the earliest. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/drip", peer.port);
    hc_get(loop, u, &r,
           &(loom_http_request_opts){.first_byte_timeout_ms = 300, .idle_timeout_ms = 3000});
    hc_run_until(loop, &r.done, 8000);
    if (r.done != 2 || r.ev_kind != LOOM_EV_HTTP_TIMEOUT ||
        strstr(r.msg, "read timeout after 300 ms waiting for 127.0.0.1:") == NULL ||
        strstr(r.msg, "first byte timeout") == NULL) {
        fprintf(stderr, "drip: done %d kind %d msg \"%s\"\n", r.done, r.ev_kind, r.msg);
        exit(1);
    }
    hc_result_free(&r);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client interim: ok\n");
    return 0;
}
