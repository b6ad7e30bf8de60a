/* test_fs_watch_readerr: a read error of the loop's inotify instance (here
 * its fd is replaced under loom by a directory's, as an application that
 * closes an fd it does not own might do: every read then fails with
 * EISDIR, on every wake-up) is reported once per watch, naming the watch's
 * root, and each watch is then closed (LOOM_FS_CLOSED), not reported again
 * on each wake-up; a watch started afterwards gets a new instance and
 * works. */
#include <dirent.h>

#include "test_fs_util.h"

typedef struct seen {
    int errors, closed, others;
    int code;
    char msg[4200];
} seen;

static int keep = -1; /* the inotify instance, kept open while loom reads the wrong fd */

static void on_fs(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    seen *s = data;
    (void)w;
    if (ev->type == LOOM_FS_ERROR) {
        s->errors++;
        s->code = ev->code;
        snprintf(s->msg, sizeof s->msg, "%s", ev->msg ? ev->msg : "(null)");
        /* The instance's last reference goes, so no backend can report it
         * again: only loom's own handling stops the errors from then on. */
        if (keep >= 0) {
            close(keep);
            keep = -1;
        }
    } else if (ev->type == LOOM_FS_CLOSED) {
        s->closed++;
    } else {
        s->others++;
    }
}

/* The fd of the (only) inotify instance of this process, or -1. */
static int inotify_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    int found = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char link[300], target[128];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, "anon_inode:inotify") == 0)
            found = atoi(e->d_name);
    }
    closedir(d);
    return found;
}

static void run_while(loom_loop_t *loop, const seen *a, const seen *b, double secs)
{
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, fs_tick, NULL));
    loom_timer_unref(t);
    CHECK_OK(loom_timer_start(t, 10, 10));
    double end = fs_now() + secs;
    while ((a->closed == 0 || b->closed == 0) && fs_now() < end)
        loom_run(loop, LOOM_RUN_ONCE);
    loom_timer_close(t);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    char *d1 = fs_tmpdir();
    char *d2 = fs_tmpdir();
    seen s1 = {0}, s2 = {0}, s3 = {0};
    loom_fs_watch_t *w1, *w2, *w3;
    CHECK_OK(loom_fs_watch(loop, d1, 0, on_fs, &s1, &w1));
    CHECK_OK(loom_fs_watch(loop, d2, LOOM_FS_WATCH_RECURSIVE, on_fs, &s2, &w2));

    /* One turn of the loop first: a backend that registers fds lazily (the
     * uv one) must have registered the instance's before it is replaced. */
    loom_run(loop, LOOM_RUN_NOWAIT);
    int ino = inotify_fd();
    CHECK(ino >= 0);
    keep = dup(ino);
    CHECK(keep >= 0);
    int dfd = open(d1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK(dfd >= 0);
    CHECK(dup2(dfd, ino) == ino); /* loom's fd now reads a directory: EISDIR */
    close(dfd);
    fs_write(fs_path(d1, "a"), "x"); /* the instance becomes readable */

    run_while(loop, &s1, &s2, 10);
    run_for(loop, 0.2); /* nothing more comes, however often the loop wakes */
    char want[4200];
    snprintf(want, sizeof want,
             "cannot read the inotify events of %s: is a directory; the watch is closed", d1);
    CHECK_STR(s1.msg, want);
    snprintf(want, sizeof want,
             "cannot read the inotify events of %s: is a directory; the watch is closed", d2);
    CHECK_STR(s2.msg, want);
    CHECK_EQ(s1.errors, 1);
    CHECK_EQ(s2.errors, 1);
    CHECK_EQ(s1.code, LOOM_EISDIR);
    CHECK_EQ(s1.closed, 1);
    CHECK_EQ(s2.closed, 1);
    CHECK_EQ(keep, -1);

    /* A new watch gets a new instance, which works. */
    CHECK_OK(loom_fs_watch(loop, d1, 0, on_fs, &s3, &w3));
    fs_write(fs_path(d1, "b"), "y");
    double end = fs_now() + 5;
    while (s3.others == 0 && fs_now() < end)
        run_for(loop, 0.02);
    CHECK(s3.others > 0);
    CHECK_EQ(s3.errors, 0);
    loom_fs_watch_close(w3);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(s3.closed, 1);

    fs_rmtree(d1);
    fs_rmtree(d2);
    test_loop_free_clean(loop);
    return 0;
}
