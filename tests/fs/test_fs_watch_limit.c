/* tests/fs/test_fs_watch_limit.c - running out of inotify watches. The
 * limit is lowered in a user namespace of this process only
 * (/proc/sys/user/max_inotify_watches is per namespace), so no other test
 * is touched: a recursive watch of a tree larger than the limit fails with
 * LOOM_ENOSPC and a message naming max_user_watches; a directory made
 * later, past the limit, is a LOOM_FS_ERROR event saying the same. Skipped
 * where user namespaces cannot be made. */
#include <sched.h>

#include "test_fs_util.h"

#define LIMIT 12

static char logged[1024];
static void on_log(int level, const char *msg, void *data)
{
    (void)data;
    if (level <= LOOM_LOG_ERR)
        snprintf(logged, sizeof logged, "%s", msg);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

int main(void)
{
    test_timeout(30);
    uid_t uid = getuid();
    gid_t gid = getgid();
    /* Before any thread or inotify instance: the instance is charged to
     * the namespace it is made in. */
    if (unshare(CLONE_NEWUSER) != 0)
        TEST_SKIP("cannot make a user namespace");
    char map[64];
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    write_file("/proc/self/setgroups", "deny");
    if (write_file("/proc/self/uid_map", map) != 0)
        TEST_SKIP("cannot map the user namespace");
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    write_file("/proc/self/gid_map", map);
    char lim[16];
    snprintf(lim, sizeof lim, "%d", LIMIT);
    if (write_file("/proc/sys/user/max_inotify_watches", lim) != 0)
        TEST_SKIP("cannot lower /proc/sys/user/max_inotify_watches in a user namespace");

    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log}));
    char *dir = fs_tmpdir();
    for (int i = 0; i < LIMIT + 5; i++)
        CHECK(mkdir(fs_path(dir, "d%d", i), 0755) == 0);

    /* The whole tree cannot be watched: the call fails, nothing is left. */
    recorder r;
    rec_init(&r);
    loom_fs_watch_t *w;
    CHECK_EQ(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r, &w), LOOM_ENOSPC);
    CHECK(strstr(logged, "max_user_watches") != NULL);
    CHECK(strstr(logged, dir) != NULL);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* Within the limit it works; a directory past it is an error event,
     * and the watch goes on. */
    for (int i = LIMIT - 3; i < LIMIT + 5; i++)
        CHECK(rmdir(fs_path(dir, "d%d", i)) == 0);
    CHECK_OK(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r, &w));
    CHECK_EQ(loom_fs_watch_dirs(w), LIMIT - 2);
    for (int i = LIMIT - 3; i < LIMIT + 1; i++)
        CHECK(mkdir(fs_path(dir, "d%d", i), 0755) == 0);
    long i = run_until(loop, &r, 0, LOOM_FS_ERROR, NULL, 10);
    CHECK(i >= 0);
    CHECK_EQ(r.ev[i].code, LOOM_ENOSPC);
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "d12", 10) >= 0);
    CHECK_EQ(loom_fs_watch_dirs(w), LIMIT);
    fs_write(fs_path(dir, "f"), "x");
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "f", 10) >= 0);

    loom_fs_watch_close(w);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.closed, 1);
    rec_free(&r);
    fs_rmtree(dir);
    test_loop_free_clean(loop);
    return 0;
}
