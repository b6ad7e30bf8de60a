/* tests/fs/test_fs_util.h - shared helpers of the fs watch tests: a temp
 * directory, an event recorder, and a bounded "run until" loop. */
#ifndef LOOM_TEST_FS_UTIL_H
#define LOOM_TEST_FS_UTIL_H

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"

#define REC_MAX 4096

typedef struct rec {
    loom_fs_event_type_t type;
    char path[4096];
    char to[256];
    int is_dir;
    int code;
} rec;

typedef struct recorder {
    rec *ev;
    size_t n;
    size_t dropped; /* beyond REC_MAX */
    int closed;     /* LOOM_FS_CLOSED count */
    int verbose;
} recorder;

static inline void rec_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    r->ev = calloc(REC_MAX, sizeof *r->ev);
    CHECK(r->ev != NULL);
    r->verbose = getenv("FS_TEST_VERBOSE") != NULL;
}

static inline void rec_free(recorder *r)
{
    free(r->ev);
}

static inline void rec_cb(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    recorder *r = data;
    (void)w;
    CHECK(ev->path != NULL);
    if (r->verbose)
        fprintf(stderr, "  event %s \"%.80s\"%s%s%s %s\n", loom_fs_event_name(ev->type), ev->path,
                ev->to ? " -> \"" : "", ev->to ? ev->to : "", ev->to ? "\"" : "",
                ev->msg ? ev->msg : "");
    if (ev->type == LOOM_FS_CLOSED)
        r->closed++;
    if (r->n == REC_MAX) {
        r->dropped++;
        return;
    }
    rec *e = &r->ev[r->n++];
    e->type = ev->type;
    snprintf(e->path, sizeof e->path, "%s", ev->path);
    snprintf(e->to, sizeof e->to, "%s", ev->to ? ev->to : "");
    e->is_dir = ev->is_dir;
    e->code = ev->code;
}

/* Index of the first event at or after `from` of `type` and `path`, or -1. */
static inline long rec_find(const recorder *r, size_t from, loom_fs_event_type_t type,
                            const char *path)
{
    for (size_t i = from; i < r->n; i++)
        if (r->ev[i].type == type && (path == NULL || strcmp(r->ev[i].path, path) == 0))
            return (long)i;
    return -1;
}

static inline size_t rec_count(const recorder *r, loom_fs_event_type_t type, const char *path)
{
    size_t c = 0;
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == type && (path == NULL || strcmp(r->ev[i].path, path) == 0))
            c++;
    return c;
}

static inline double fs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void fs_tick(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}

/* Runs the loop until `type`/`path` is recorded (at or after `from`) or
 * `secs` pass; returns its index or -1. A ticking unref'd timer bounds each
 * iteration's wait. */
static inline long run_until(loom_loop_t *loop, recorder *r, size_t from, loom_fs_event_type_t type,
                             const char *path, double secs)
{
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, fs_tick, NULL));
    loom_timer_unref(t);
    CHECK_OK(loom_timer_start(t, 10, 10));
    double end = fs_now() + secs;
    long i;
    while ((i = rec_find(r, from, type, path)) < 0 && fs_now() < end)
        loom_run(loop, LOOM_RUN_ONCE);
    loom_timer_close(t);
    loom_run(loop, LOOM_RUN_NOWAIT);
    return i;
}

/* Runs the loop for `secs` (to see that nothing more arrives). */
static inline void run_for(loom_loop_t *loop, double secs)
{
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, fs_tick, NULL));
    loom_timer_unref(t);
    CHECK_OK(loom_timer_start(t, 10, 10));
    double end = fs_now() + secs;
    while (fs_now() < end)
        loom_run(loop, LOOM_RUN_ONCE);
    loom_timer_close(t);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static inline char *fs_path(const char *dir, const char *fmt, ...)
{
    static char buf[8][4096];
    static int k;
    char rel[4000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    char *b = buf[k++ & 7];
    snprintf(b, 4096, "%s/%s", dir, rel);
    return b;
}

static inline void fs_write(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

static inline int fs_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb;
    (void)flag;
    (void)f;
    return remove(p);
}

/* rm -rf */
static inline void fs_rmtree(const char *dir)
{
    nftw(dir, fs_rm_one, 64, FTW_DEPTH | FTW_PHYS);
}

static inline char *fs_tmpdir(void)
{
    static char tmpl[8][64];
    static int k;
    char *t = tmpl[k++ & 7];
    snprintf(t, 64, "/tmp/loom-fswatch-XXXXXX");
    CHECK(mkdtemp(t) != NULL);
    return t;
}

#endif
