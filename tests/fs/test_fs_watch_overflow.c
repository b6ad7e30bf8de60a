/* tests/fs/test_fs_watch_overflow.c - more events than the kernel queues
 * (max_queued_events, 16384 by default) made while the loop is not reading:
 * every watch gets LOOM_FS_OVERFLOW, and watching goes on afterwards. The
 * limit is not lowered (it is global to the machine): the burst is sized to
 * it, and skipped when the limit is too large to reach quickly. */
#include "test_fs_util.h"

static int overflows_seen;
static void count_cb(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    (void)w;
    (void)data;
    if (ev->type == LOOM_FS_OVERFLOW)
        overflows_seen++;
}

/* The recorder keeps the first REC_MAX events; the burst's are counted,
 * and the rest recorded. */
static long creates, deletes;
static void burst_cb(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    if (ev->type == LOOM_FS_CREATE && ev->path[0] == 'f')
        creates++;
    else if (ev->type == LOOM_FS_DELETE && ev->path[0] == 'f')
        deletes++;
    else
        rec_cb(w, ev, data);
}

int main(void)
{
    test_timeout(60);
    long limit = 0;
    FILE *f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
    if (f == NULL || fscanf(f, "%ld", &limit) != 1)
        TEST_SKIP("cannot read /proc/sys/fs/inotify/max_queued_events");
    fclose(f);
    if (limit > 200000)
        TEST_SKIP("max_queued_events is %ld: too many events to provoke an overflow fast", limit);

    loom_loop_t *loop = test_loop_new();
    /* tmpfs where there is one: 16,000 file operations cost less there. */
    char shm[] = "/dev/shm/loom-fswatch-XXXXXX";
    char *dir = mkdtemp(shm);
    if (dir == NULL)
        dir = fs_tmpdir();
    recorder r;
    rec_init(&r);
    loom_fs_watch_t *w, *w2;
    CHECK_OK(loom_fs_watch(loop, dir, 0, burst_cb, &r, &w));
    /* A second watch (of another directory) hears it too: the queue is the
     * loop's. */
    char *dir2 = fs_tmpdir();
    CHECK_OK(loom_fs_watch(loop, dir2, 0, count_cb, NULL, &w2));

    /* Two events per step (create, delete): the queue fills without a
     * single read. Each name differs, so the kernel cannot merge them. */
    long steps = limit / 2 + 1000;
    for (long i = 0; i < steps; i++) {
        char *p = fs_path(dir, "f%ld", i);
        int fd = open(p, O_WRONLY | O_CREAT, 0644);
        CHECK(fd >= 0);
        close(fd);
        CHECK(unlink(p) == 0);
    }
    CHECK(run_until(loop, &r, 0, LOOM_FS_OVERFLOW, "", 20) >= 0);
    CHECK_EQ(overflows_seen, 1);
    CHECK_EQ(rec_count(&r, LOOM_FS_OVERFLOW, NULL), 1);
    /* What was queued before the overflow is delivered: a full queue (the
     * kernel's count of the overflow event itself has varied). */
    CHECK(creates + deletes >= limit - 1 && creates + deletes <= limit);

    /* Still watching. */
    size_t mark = r.n;
    fs_write(fs_path(dir, "after"), "x");
    CHECK(run_until(loop, &r, mark, LOOM_FS_CREATE, "after", 10) >= 0);

    loom_fs_watch_close(w);
    loom_fs_watch_close(w2);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.closed, 1);
    rec_free(&r);
    fs_rmtree(dir);
    fs_rmtree(dir2);
    test_loop_free_clean(loop);
    return 0;
}
