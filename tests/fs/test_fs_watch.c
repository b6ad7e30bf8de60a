/* tests/fs/test_fs_watch.c - each event kind on real files, renames within,
 * into and out of the tree, recursive renames of directories, a file watch,
 * a deleted root, closing from the callback, and start-up errors. */
#include "test_fs_util.h"

static char logged[1024];

static void on_log(int level, const char *msg, void *data)
{
    (void)data;
    if (level <= LOOM_LOG_ERR)
        snprintf(logged, sizeof logged, "%s", msg);
}

/* Closes its own watch from its first event. */
static int self_close_events;
static void self_close_cb(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    recorder *r = data;
    rec_cb(w, ev, r);
    if (ev->type != LOOM_FS_CLOSED) {
        self_close_events++;
        loom_fs_watch_close(w);
        loom_fs_watch_close(w); /* harmless twice */
    }
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log}));
    char *dir = fs_tmpdir();
    char *out = fs_tmpdir(); /* outside the tree */

    /* --- Start-up errors name the path. ------------------------------ */
    loom_fs_watch_t *w = NULL;
    CHECK_EQ(loom_fs_watch(loop, fs_path(dir, "missing"), 0, rec_cb, NULL, &w), LOOM_ENOENT);
    CHECK(strstr(logged, "missing") != NULL);
    CHECK(strstr(logged, "no such file") != NULL);
    CHECK_EQ(loom_fs_watch(loop, dir, 0x100, rec_cb, NULL, &w), LOOM_EINVAL);
    CHECK_EQ(loom_fs_watch(loop, dir, 0, NULL, NULL, &w), LOOM_EINVAL);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* --- Each kind, non-recursive. ----------------------------------- */
    recorder r;
    rec_init(&r);
    CHECK_OK(loom_fs_watch(loop, dir, 0, rec_cb, &r, &w));
    CHECK_EQ(loom_fs_watch_dirs(w), 1);
    CHECK(loom_fs_watch_data(w) == &r);
    CHECK(loom_fs_watch_loop(w) == loop);
    CHECK_STR(loom_fs_watch_path(w), dir);

    fs_write(fs_path(dir, "a"), "x");
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "a", 5) >= 0);
    CHECK(run_until(loop, &r, 0, LOOM_FS_MODIFY, "a", 5) >= 0);
    CHECK_EQ(r.ev[rec_find(&r, 0, LOOM_FS_CREATE, "a")].is_dir, 0);

    CHECK(chmod(fs_path(dir, "a"), 0600) == 0);
    CHECK(run_until(loop, &r, 0, LOOM_FS_ATTRIB, "a", 5) >= 0);

    /* A rename inside the tree is one event with both names. */
    size_t mark = r.n;
    CHECK(rename(fs_path(dir, "a"), fs_path(dir, "b")) == 0);
    long i = run_until(loop, &r, mark, LOOM_FS_RENAME, "a", 5);
    CHECK(i >= 0);
    CHECK_STR(r.ev[i].to, "b");

    CHECK(mkdir(fs_path(dir, "sub"), 0755) == 0);
    i = run_until(loop, &r, 0, LOOM_FS_CREATE, "sub", 5);
    CHECK(i >= 0);
    CHECK_EQ(r.ev[i].is_dir, 1);

    /* Out of the tree: a delete-like "moved out"; into it: "moved in". */
    CHECK(rename(fs_path(dir, "b"), fs_path(out, "b")) == 0);
    CHECK(run_until(loop, &r, mark, LOOM_FS_MOVED_OUT, "b", 5) >= 0);
    fs_write(fs_path(out, "c"), "y");
    CHECK(rename(fs_path(out, "c"), fs_path(dir, "c")) == 0);
    CHECK(run_until(loop, &r, mark, LOOM_FS_MOVED_IN, "c", 5) >= 0);
    /* Not watched recursively: sub/ is not seen, so c moved there is gone. */
    CHECK(rename(fs_path(dir, "c"), fs_path(dir, "sub/c")) == 0);
    CHECK(run_until(loop, &r, mark, LOOM_FS_MOVED_OUT, "c", 5) >= 0);
    fs_write(fs_path(dir, "sub/d"), "z");

    CHECK(unlink(fs_path(dir, "sub/c")) == 0);
    CHECK(unlink(fs_path(dir, "sub/d")) == 0);
    CHECK(rmdir(fs_path(dir, "sub")) == 0);
    i = run_until(loop, &r, mark, LOOM_FS_DELETE, "sub", 5);
    CHECK(i >= 0);
    CHECK_EQ(r.ev[i].is_dir, 1);
    CHECK_EQ(rec_count(&r, LOOM_FS_CREATE, "sub/d"), 0);
    CHECK_EQ(rec_count(&r, LOOM_FS_MOVED_IN, "b"), 0);
    CHECK_EQ(rec_count(&r, LOOM_FS_ERROR, NULL), 0);
    loom_fs_watch_close(w);
    CHECK_EQ(r.closed, 0); /* at the end of the iteration */
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(r.closed, 1);
    CHECK_EQ(r.ev[r.n - 1].type, LOOM_FS_CLOSED);
    rec_free(&r);

    /* --- Recursive: renames across directories and of directories. ---- */
    rec_init(&r);
    CHECK(mkdir(fs_path(dir, "d1"), 0755) == 0);
    CHECK(mkdir(fs_path(dir, "d1/d2"), 0755) == 0);
    fs_write(fs_path(dir, "d1/x"), "1");
    CHECK_OK(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r, &w));
    CHECK_EQ(loom_fs_watch_dirs(w), 3);

    CHECK(rename(fs_path(dir, "d1/x"), fs_path(dir, "y")) == 0);
    i = run_until(loop, &r, 0, LOOM_FS_RENAME, "d1/x", 5);
    CHECK(i >= 0);
    CHECK_STR(r.ev[i].to, "y");

    CHECK(rename(fs_path(dir, "d1"), fs_path(dir, "e1")) == 0);
    i = run_until(loop, &r, 0, LOOM_FS_RENAME, "d1", 5);
    CHECK(i >= 0);
    CHECK_STR(r.ev[i].to, "e1");
    CHECK_EQ(r.ev[i].is_dir, 1);
    /* The renamed subtree reports under its new name. */
    fs_write(fs_path(dir, "e1/d2/f"), "2");
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "e1/d2/f", 5) >= 0);

    /* A directory moved out is dropped with its subtree. */
    CHECK(rename(fs_path(dir, "e1"), fs_path(out, "e1")) == 0);
    CHECK(run_until(loop, &r, 0, LOOM_FS_MOVED_OUT, "e1", 5) >= 0);
    CHECK_EQ(loom_fs_watch_dirs(w), 1);
    mark = r.n;
    fs_write(fs_path(out, "e1/d2/g"), "3");
    /* A directory moved in is watched with its subtree. */
    CHECK(rename(fs_path(out, "e1"), fs_path(dir, "m1")) == 0);
    i = run_until(loop, &r, mark, LOOM_FS_MOVED_IN, "m1", 5);
    CHECK(i >= 0);
    CHECK_EQ(r.ev[i].is_dir, 1);
    CHECK_EQ(loom_fs_watch_dirs(w), 3);
    fs_write(fs_path(dir, "m1/d2/h"), "4");
    CHECK(run_until(loop, &r, mark, LOOM_FS_CREATE, "m1/d2/h", 5) >= 0);
    for (size_t k = mark; k < r.n; k++)
        CHECK(strstr(r.ev[k].path, "g") == NULL); /* nothing from outside */

    /* A deleted subdirectory is dropped. */
    CHECK(unlink(fs_path(dir, "m1/d2/g")) == 0);
    CHECK(unlink(fs_path(dir, "m1/d2/h")) == 0);
    CHECK(unlink(fs_path(dir, "m1/d2/f")) == 0);
    CHECK(rmdir(fs_path(dir, "m1/d2")) == 0);
    CHECK(run_until(loop, &r, mark, LOOM_FS_DELETE, "m1/d2", 5) >= 0);
    run_for(loop, 0.05);
    CHECK_EQ(loom_fs_watch_dirs(w), 2);

    /* --- Two watches on one directory share the kernel's watch. -------- */
    recorder r2;
    rec_init(&r2);
    loom_fs_watch_t *w2;
    CHECK_OK(loom_fs_watch(loop, fs_path(dir, "m1"), 0, rec_cb, &r2, &w2));
    fs_write(fs_path(dir, "m1/k"), "5");
    CHECK(run_until(loop, &r2, 0, LOOM_FS_CREATE, "k", 5) >= 0);
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "m1/k", 5) >= 0);
    loom_fs_watch_close(w2);
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(r2.closed, 1);
    mark = r.n;
    fs_write(fs_path(dir, "m1/k2"), "6"); /* the other watch still sees it */
    CHECK(run_until(loop, &r, mark, LOOM_FS_CREATE, "m1/k2", 5) >= 0);
    rec_free(&r2);

    /* --- Closing from the callback: nothing after, CLOSED once. -------- */
    rec_init(&r2);
    CHECK_OK(loom_fs_watch(loop, dir, 0, self_close_cb, &r2, &w2));
    fs_write(fs_path(dir, "s1"), "a");
    fs_write(fs_path(dir, "s2"), "b");
    CHECK(run_until(loop, &r, 0, LOOM_FS_CREATE, "s2", 5) >= 0);
    run_for(loop, 0.05);
    CHECK_EQ(self_close_events, 1);
    CHECK_EQ(r2.closed, 1);
    CHECK_EQ(r2.n, 2);
    CHECK_EQ(r2.ev[1].type, LOOM_FS_CLOSED);
    rec_free(&r2);

    /* --- A file watch; a deleted root ends its watch. ------------------- */
    rec_init(&r2);
    CHECK_OK(loom_fs_watch(loop, fs_path(dir, "s1"), 0, rec_cb, &r2, &w2));
    fs_write(fs_path(dir, "s1"), "more");
    CHECK(run_until(loop, &r2, 0, LOOM_FS_MODIFY, "", 5) >= 0);
    CHECK(unlink(fs_path(dir, "s1")) == 0);
    CHECK(run_until(loop, &r2, 0, LOOM_FS_CLOSED, "", 5) >= 0);
    CHECK(rec_find(&r2, 0, LOOM_FS_DELETE, "") >= 0);
    CHECK_EQ(r2.closed, 1);
    rec_free(&r2);

    rec_init(&r2);
    CHECK(mkdir(fs_path(dir, "gone"), 0755) == 0);
    CHECK_OK(loom_fs_watch(loop, fs_path(dir, "gone/"), 0, rec_cb, &r2, &w2));
    CHECK(rmdir(fs_path(dir, "gone")) == 0);
    CHECK(run_until(loop, &r2, 0, LOOM_FS_CLOSED, "", 5) >= 0);
    i = rec_find(&r2, 0, LOOM_FS_DELETE, "");
    CHECK(i >= 0);
    CHECK_EQ(r2.ev[i].is_dir, 1);
    CHECK_EQ(r2.closed, 1);
    rec_free(&r2);

    /* A root moved away ends its watch too. */
    rec_init(&r2);
    CHECK(mkdir(fs_path(dir, "mv"), 0755) == 0);
    CHECK_OK(loom_fs_watch(loop, fs_path(dir, "mv"), 0, rec_cb, &r2, &w2));
    CHECK(rename(fs_path(dir, "mv"), fs_path(out, "mv")) == 0);
    CHECK(run_until(loop, &r2, 0, LOOM_FS_CLOSED, "", 5) >= 0);
    CHECK(rec_find(&r2, 0, LOOM_FS_MOVED_OUT, "") >= 0);
    CHECK_EQ(r2.closed, 1);
    rec_free(&r2);

    /* --- The loop ends once the last watch is closed. ------------------- */
    CHECK_EQ(rec_count(&r, LOOM_FS_ERROR, NULL), 0);
    loom_fs_watch_close(w);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.closed, 1);
    rec_free(&r);

    /* --- loom_loop_free() closes an open watch, CLOSED once. ------------ */
    rec_init(&r2);
    CHECK_OK(loom_fs_watch(loop, dir, LOOM_FS_WATCH_RECURSIVE, rec_cb, &r2, &w2));
    loom_loop_free(loop);
    CHECK_EQ(r2.closed, 1);
    rec_free(&r2);

    fs_rmtree(dir);
    fs_rmtree(out);
    /* A clean loop of its own: no live objects left behind by the above. */
    test_loop_free_clean(test_loop_new());
    return 0;
}
