/* tests/fs/test_fs_watch_tree.c - a recursive watch of a tree of 1,000
 * directories (ten chains of 100 nested ones): all watched at the start, an
 * event from the deepest one under its full relative path; a chain made while watched (caught by
 * the scan of each new directory); and the whole tree deleted, every directory dropped. */
#include "test_fs_util.h"

#define CHAINS     10
#define DEPTH      100 /* per chain, its top included */
#define NEW_DEPTH  40
#define LONG_CHAIN 25 /* of 200-byte names: beyond PATH_MAX */

/* Makes a chain of `depth` directories named `name` under `dir`; returns
 * an fd of the deepest (openat keeps each step O(1)). */
static int make_chain(const char *dir, const char *name, int depth)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0);
    for (int i = 0; i < depth; i++) {
        CHECK(mkdirat(fd, name, 0755) == 0);
        int nfd = openat(fd, name, O_RDONLY | O_DIRECTORY);
        CHECK(nfd >= 0);
        close(fd);
        fd = nfd;
    }
    return fd;
}

static char *chain_path(const char *name, int depth, const char *leaf)
{
    size_t n = strlen(name);
    char *p = malloc(depth * (n + 1) + strlen(leaf) + 1);
    CHECK(p != NULL);
    char *q = p;
    for (int i = 0; i < depth; i++) {
        memcpy(q, name, n);
        q += n;
        *q++ = '/';
    }
    strcpy(q, leaf);
    return p;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    char *dir = fs_tmpdir();
    recorder r;
    rec_init(&r);

    int deep = -1;
    for (int k = 0; k < CHAINS; k++) {
        char top[64];
        snprintf(top, sizeof top, "t%d", k);
        CHECK(mkdir(fs_path(dir, "%s", top), 0755) == 0);
        if (deep >= 0)
            close(deep);
        deep = make_chain(fs_path(dir, "%s", top), "d", DEPTH - 1);
    }
    double t0 = fs_now();
    loom_fs_watch_t *w;
    CHECK_OK(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r, &w));
    double t1 = fs_now();
    CHECK_EQ(loom_fs_watch_dirs(w), CHAINS * DEPTH + 1);

    /* An event from the deepest directory, under its path from the root. */
    int fd = openat(deep, "leaf", O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
    close(deep);
    char *leaf = chain_path("d", DEPTH - 1, "leaf");
    char *deepest = malloc(strlen(leaf) + 16);
    CHECK(deepest != NULL);
    sprintf(deepest, "t%d/%s", CHAINS - 1, leaf);
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, deepest, 10) >= 0);
    free(deepest);
    free(leaf);

    /* A chain made at once while watched: each new directory is watched as
     * its create arrives, and scanned, so the ones made before their
     * parent's watch was added are reported too. */
    deep = make_chain(dir, "n", NEW_DEPTH);
    fd = openat(deep, "leaf", O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0);
    close(fd);
    close(deep);
    leaf = chain_path("n", NEW_DEPTH, "leaf");
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, leaf, 10) >= 0);
    free(leaf);
    for (int k = 1; k <= NEW_DEPTH; k++) {
        char *p = chain_path("n", k, "");
        p[strlen(p) - 1] = 0; /* no trailing slash */
        CHECK(rec_find(&r, 0, LOOM_FS_CREATE, p) >= 0);
        free(p);
    }
    CHECK_EQ(loom_fs_watch_dirs(w), CHAINS * DEPTH + 1 + NEW_DEPTH);
    CHECK_EQ(rec_count(&r, LOOM_FS_ERROR, NULL), 0);

    /* The whole tree deleted: every subdirectory dropped. */
    double t2 = fs_now();
    size_t mark = r.n;
    for (int k = 0; k < CHAINS; k++)
        fs_rmtree(fs_path(dir, "t%d", k));
    fs_rmtree(fs_path(dir, "n"));
    double t3 = fs_now();
    CHECK(run_until(loop, &r, mark, LOOM_FS_DELETE, "t9", 10) >= 0);
    CHECK(run_until(loop, &r, mark, LOOM_FS_DELETE, "n", 10) >= 0);
    double end = fs_now() + 10;
    while (loom_fs_watch_dirs(w) != 1 && fs_now() < end)
        run_for(loop, 0.01);
    CHECK_EQ(loom_fs_watch_dirs(w), 1);
    double t4 = fs_now();

    loom_fs_watch_close(w);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.closed, 1);

    /* A tree deeper than PATH_MAX: the directories that cannot be watched
     * do not fail the call; they are one error event, from the loop. */
    char name[201];
    memset(name, 'p', 200);
    name[200] = 0;
    int fds[LONG_CHAIN + 1];
    fds[0] = open(dir, O_RDONLY | O_DIRECTORY);
    CHECK(fds[0] >= 0);
    for (int k = 1; k <= LONG_CHAIN; k++) {
        CHECK(mkdirat(fds[k - 1], name, 0755) == 0);
        fds[k] = openat(fds[k - 1], name, O_RDONLY | O_DIRECTORY);
        CHECK(fds[k] >= 0);
    }
    recorder r2;
    rec_init(&r2);
    CHECK_OK(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r2, &w));
    CHECK(loom_fs_watch_dirs(w) < LONG_CHAIN + 1);
    long e = run_until(loop, &r2, 0, LOOM_FS_ERROR, NULL, 10);
    CHECK(e >= 0);
    CHECK_EQ(r2.ev[e].code, LOOM_ENAMETOOLONG);
    CHECK_EQ(rec_count(&r2, LOOM_FS_ERROR, NULL), 1);
    fs_write(fs_path(dir, "still"), "x"); /* the watch goes on */
    CHECK(run_until(loop, &r2, 0, LOOM_FS_CREATE, "still", 10) >= 0);
    loom_fs_watch_close(w);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r2.closed, 1);
    rec_free(&r2);
    for (int k = LONG_CHAIN; k >= 1; k--) {
        close(fds[k]);
        CHECK(unlinkat(fds[k - 1], name, AT_REMOVEDIR) == 0);
    }
    close(fds[0]);
    fprintf(stderr,
            "watched %d directories in %.1f ms; events %.1f ms; rm -r %.1f ms; all dropped "
            "%.1f ms later\n",
            CHAINS * DEPTH + 1, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3);
    rec_free(&r);
    fs_rmtree(dir);
    test_loop_free_clean(loop);
    return 0;
}
