/* test_h2_fair: one HTTP/2 stream whose window the client keeps shut must
 * not hold the connection's other streams back, and the memory such
 * streams make the server hold stays bounded (docs/HTTP2.md, Flow control
 * is backpressure). The client is tests/http/h2_fair_peer.py (raw frames);
 * the application streams its answers in 16 KiB writes until one returns 1
 * ("behind") and goes on from on_drain.
 *
 * - stream: stream A's window stays at zero (SETTINGS_INITIAL_WINDOW_SIZE
 *   0, WINDOW_UPDATEs only for B and the connection). B's 512 KiB answer is
 *   delivered whole while A is stuck (before, B's writer never heard
 *   on_drain until the stall timeout reset A: A's backlog counted against
 *   the connection's); then A is reset by the zero-window stall timeout,
 *   with the event naming it, and the connection serves another stream.
 *   A's writer was let write at most high water and one write.
 * - conn: the connection's window stays shut (the client never gives back
 *   its first 65535 bytes): nobody can send, every writer is behind, what
 *   they were let write until the first reset stays within high water and
 *   one write per stream beyond what left, and both streams are reset by
 *   the stall timeout.
 * - many: five streams kept shut with the connection's window wide: what
 *   their writers were let write until the first reset stays within the
 *   connection's budget (4 high waters) and one write per stream; all
 *   five are reset.
 *
 * Registered on every backend: on_drain follows the socket's writes. */
#include "test_http_server_util.h"

#define PY    "/usr/bin/python3"
#define HW    65536u /* the server's high water (low water: a quarter) */
#define CHUNK 16384u
#define WT    3000u /* the write timeout: the zero-window stall timeout */

typedef struct {
    size_t size, written;
    uint32_t id;
    bool behind;
} job_t;

static char events[8192];
static char chunk[CHUNK];
static size_t written[16];   /* by stream id: what each writer was let write */
static int ended[16];        /* by stream id: the writer ended its answer */
static int closed[16];       /* by stream id: on_close */
static int b_before_a_reset; /* stream 3 ended while stream 1 was still open */
/* What the writers had been let write when the first stream was reset
 * (later, the streams left may drain into the room the reset made). */
static size_t at_reset;

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, "%s\n", ev->msg);
}

/* Writes until the answer is complete or a write says behind. */
static void pump(loom_http_req_t *req)
{
    job_t *j = loom_http_req_data(req);
    j->behind = false;
    while (j->written < j->size) {
        size_t n = j->size - j->written < CHUNK ? j->size - j->written : CHUNK;
        int r = loom_http_response_write(req, chunk, n);
        CHECK(r == 0 || r == 1);
        j->written += n;
        written[j->id] = j->written;
        if (r == 1) {
            j->behind = true;
            return;
        }
    }
    CHECK_OK(loom_http_response_end(req));
    ended[j->id] = 1;
    if (j->id == 3 && !closed[1])
        b_before_a_reset = 1;
    free(j);
}

static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    job_t *j = loom_http_req_data(req);
    CHECK(j != NULL && j->behind); /* on_drain only after a write said behind */
    pump(req);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    CHECK_EQ(loom_http_req_version(req), 20);
    if (strncmp(path, "/fair/", 6) != 0) {
        hs_reply(req, "hi");
        return;
    }
    job_t *j = calloc(1, sizeof *j);
    CHECK(j != NULL);
    j->size = (size_t)strtoul(path + 6, NULL, 10);
    j->id = loom_http_req_stream_id(req);
    CHECK(j->id < 16);
    loom_http_req_set_data(req, j);
    CHECK_OK(loom_http_response_start(req, 200, NULL));
    pump(req);
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    job_t *j = loom_http_req_data(req);
    uint32_t id = loom_http_req_stream_id(req);
    CHECK(id < 16);
    if (at_reset == 0)
        for (int i = 0; i < 16; i++)
            at_reset += written[i];
    closed[id]++;
    CHECK_EQ(loom_http_response_write(req, "x", 1), LOOM_ECLOSED);
    CHECK_EQ(loom_http_response_end(req), LOOM_ECLOSED); /* the answer ends it */
    free(j);
}

static void reset_counts(void)
{
    events[0] = 0;
    memset(written, 0, sizeof written);
    memset(ended, 0, sizeof ended);
    memset(closed, 0, sizeof closed);
    b_before_a_reset = 0;
    at_reset = 0;
}

/* Runs one scenario of the peer; its output in out. */
static void peer(loom_loop_t *loop, loom_http_server_t *srv, const char *what, char *out,
                 size_t size)
{
    char script[256], port[16];
    snprintf(script, sizeof script, "%s/tests/http/h2_fair_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {PY, script, port, (char *)what, NULL};
    reset_counts();
    uint64_t t0 = hs_now_ms();
    int r = hs_run_child(loop, argv, NULL, 0, out, size, 40000);
    hs_run_for(loop, 50); /* the server's side of the end */
    fprintf(stderr, "%s (%u ms): %s", what, (unsigned)(hs_now_ms() - t0), out);
    fprintf(stderr, "  events: %s", events[0] ? events : "(none)\n");
    fprintf(stderr, "  written: 1=%zu 3=%zu 5=%zu 7=%zu 9=%zu (%zu at the first reset)\n",
            written[1], written[3], written[5], written[7], written[9], at_reset);
    CHECK_EQ(r, 0);
}

int main(void)
{
    test_timeout(100);
    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0)
        TEST_SKIP("python3-hpack is missing");
    memset(chunk, 'f', sizeof chunk);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_event = on_event,
                                                       .on_close = on_close,
                                                       .on_drain = on_drain,
                                                       .high_water = HW,
                                                       .write_timeout_ms = WT,
                                                       .http2 = {.h2c = true}},
                              &srv));
    char out[4096];

    /* One stream kept shut, another read: the other completes first. */
    peer(loop, srv, "stream", out, sizeof out);
    hs_expect_in(out, "stream 3: 524288 bytes, end\n"
                      "stream 1: 0 bytes, rst 8\n"
                      "stream 5: status 200 None\n");
    hs_expect_in(events, "stream 1: response write timeout (zero window)");
    CHECK(strstr(events, "stream 3") == NULL);
    CHECK(ended[3] && b_before_a_reset);
    CHECK(!ended[1] && closed[1] == 1 && closed[3] == 0);
    CHECK(written[1] >= HW && written[1] <= HW + CHUNK);

    /* The connection's window shut: nobody moves, memory stays bounded. */
    peer(loop, srv, "conn", out, sizeof out);
    hs_expect_in(out, "data 65535\n");
    hs_expect_in(out, "stream 1: ");
    hs_expect_in(out, "stream 3: ");
    hs_expect_in(events, "stream 1: response write timeout (zero window)");
    hs_expect_in(events, "stream 3: response write timeout (zero window)");
    CHECK(!ended[1] && !ended[3] && closed[1] == 1 && closed[3] == 1);
    CHECK(at_reset >= HW && at_reset <= 65535 + HW + 2 * CHUNK);

    /* Five streams kept shut: within the connection's budget. */
    peer(loop, srv, "many", out, sizeof out);
    hs_expect_in(out, "data 0\n");
    for (int id = 1; id <= 9; id += 2) {
        char want[64];
        snprintf(want, sizeof want, "stream %d: 0 bytes, rst 8\n", id);
        hs_expect_in(out, want);
        snprintf(want, sizeof want, "stream %d: response write timeout (zero window)", id);
        hs_expect_in(events, want);
        CHECK(!ended[id] && closed[id] == 1);
    }
    CHECK(at_reset >= 4 * HW && at_reset <= 4 * HW + 5 * CHUNK);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("h2 fair: ok\n");
    return 0;
}
