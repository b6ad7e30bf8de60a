/* test_h2_idle_memory: an idle HTTP/2 connection gives nghttp2's stream map
 * page back to the kernel (src/http/h2_mem.c), and keeps working after.
 *
 * The server (h2c with prior knowledge) and loom's client run on one loop,
 * with the sweep's period lowered to 50 ms. The checks read the arena's
 * counters and mincore() on its slots (loom__h2arena_get_stats):
 * - after one request and an idle period the connection's slot is given
 *   back: not resident;
 * - 400 more requests on the same connection (stream ids keep growing),
 *   100 at a time: all answered, and the slot is given back again after;
 * - a held (deferred) request keeps its stream in the map: the page is not
 *   all zero, so it stays; answered, it is given back;
 * - 250 streams held at once make nghttp2 grow its map (a calloc of 8 KiB,
 *   from malloc): the slot returns to the free list, and a connection to a
 *   new server reuses it;
 * - closing the server frees every slot.
 */
#include <sys/mman.h>

#include "http/h2_mem.h"
#include "http/server_internal.h"
#include "test_http_server_util.h"

#define NHOLD 250

static loom_http_req_t *held[NHOLD];
static int nheld;
static int answered, failed;
static uint32_t last_id;
static atomic_int got_held;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_EQ(loom_http_req_version(req), 20);
    last_id = loom_http_req_stream_id(req);
    if (strncmp(loom_http_req_path(req, NULL), "/hold", 5) == 0) {
        CHECK(nheld < NHOLD);
        held[nheld++] = req;
        atomic_store(&got_held, nheld);
        return;
    }
    hs_reply(req, "ok");
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    (void)req;
    (void)data;
    if (res->status == 200 && res->body_len == 2 && memcmp(res->body, "ok", 2) == 0)
        answered++;
    else
        failed++;
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "client: %s\n", ev->msg);
    failed++;
}

static void get(loom_loop_t *loop, int port, const char *path)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){
                                   .version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
                                   .on_response = on_response,
                                   .on_event = on_event,
                               },
                               NULL));
}

static loom__h2arena_stats stats(loom_loop_t *loop)
{
    loom__h2arena_stats st;
    loom__h2arena_get_stats(loom__hsrv_loop_get(loop)->h2_arena, &st);
    return st;
}

/* Runs the loop until `want` answers came (5 s at most). */
static void wait_answers(loom_loop_t *loop, int want)
{
    uint64_t end = hs_now_ms() + 5000;
    while (answered + failed < want && hs_now_ms() < end)
        hs_run_for(loop, 5);
    CHECK_EQ(failed, 0);
    CHECK_EQ(answered, want);
}

/* Runs the loop until the arena has given a page back `reclaims` times in
 * all and holds `used` slots, every one given back (2 s at most). */
static void wait_reclaimed(loom_loop_t *loop, uint64_t reclaims, size_t used)
{
    uint64_t end = hs_now_ms() + 2000;
    loom__h2arena_stats st = stats(loop);
    while ((st.reclaims < reclaims || st.reclaimed != used) && hs_now_ms() < end) {
        hs_run_for(loop, 10);
        st = stats(loop);
    }
    CHECK(st.reclaims >= reclaims);
    CHECK_EQ(st.used, used);
    CHECK_EQ(st.reclaimed, used);
    CHECK_EQ(st.active, 0);
    CHECK_EQ(st.held, 0);
    CHECK_EQ(st.resident, 0); /* mincore: the pages are really gone */
}

int main(void)
{
    test_timeout(30);
    loom__h2mem_period_ms = 50;
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.http2 = {.h2c = true, .max_concurrent_streams = 300}}, &srv));
    int port = loom_http_server_port(srv);

    /* One request, then idle: the slot is given back. */
    get(loop, port, "/");
    wait_answers(loop, 1);
    loom__h2arena_stats st = stats(loop);
    CHECK_EQ(st.used, 1);
    CHECK_EQ(st.resident, 1); /* the stream was in the map */
    wait_reclaimed(loop, 1, 1);

    /* Many streams on the same connection afterwards, then idle again. */
    for (int round = 0; round < 4; round++) {
        uint32_t before = last_id;
        for (int i = 0; i < 100; i++)
            get(loop, port, "/");
        wait_answers(loop, 1 + 100 * (round + 1));
        CHECK(last_id > before); /* the same connection: its stream ids go on */
        CHECK_EQ(stats(loop).used, 1);
    }
    CHECK_EQ(last_id, 2 * 401 - 1);
    wait_reclaimed(loop, 2, 1);

    /* A held request: its stream stays in the map, so the page stays. */
    get(loop, port, "/hold");
    CHECK(hs_run_until(loop, &got_held, 5000));
    hs_run_for(loop, 200); /* four periods */
    st = stats(loop);
    CHECK_EQ(st.used, 1);
    CHECK_EQ(st.held, 1);
    CHECK_EQ(st.resident, 1);
    hs_reply(held[0], "ok");
    nheld = 0;
    wait_answers(loop, 402);
    wait_reclaimed(loop, 3, 1);

    /* 250 streams at once: nghttp2 grows its map out of the slot, which is
     * freed, then given back a period later. */
    atomic_store(&got_held, 0);
    for (int i = 0; i < NHOLD; i++)
        get(loop, port, "/hold");
    uint64_t end = hs_now_ms() + 5000;
    while (atomic_load(&got_held) < NHOLD && hs_now_ms() < end)
        hs_run_for(loop, 5);
    CHECK_EQ(nheld, NHOLD);
    st = stats(loop);
    CHECK_EQ(st.used, 0);
    CHECK_EQ(st.free, 1);
    for (int i = 0; i < NHOLD; i++)
        hs_reply(held[i], "ok");
    nheld = 0;
    wait_answers(loop, 402 + NHOLD);
    get(loop, port, "/"); /* the grown map works as well */
    wait_answers(loop, 403 + NHOLD);

    /* The slot, free, is given back a period later; the connection ends
     * with its server, and a new one reuses the slot. */
    end = hs_now_ms() + 2000;
    while (stats(loop).free_clean != 1 && hs_now_ms() < end)
        hs_run_for(loop, 10);
    CHECK_EQ(stats(loop).free_clean, 1);
    hs_close_server(loop, srv);
    st = stats(loop);
    CHECK_EQ(st.used, 0);
    CHECK_EQ(st.free, 1);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.http2 = {.h2c = true}}, &srv));
    port = loom_http_server_port(srv);
    get(loop, port, "/");
    wait_answers(loop, 404 + NHOLD);
    st = stats(loop);
    CHECK_EQ(st.used, 1);
    CHECK_EQ(st.free, 0);
    wait_reclaimed(loop, 4, 1);
    fprintf(stderr, "pages given back: %llu\n", (unsigned long long)stats(loop).reclaims);

    hs_close_server(loop, srv);
    st = stats(loop);
    CHECK_EQ(st.used, 0);
    CHECK_EQ(st.free, 1);
    hs_run_for(loop, 20);
    test_loop_free_clean(loop);
    return 0;
}
