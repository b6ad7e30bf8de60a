/* fs/watch.c - file-system watching on inotify (loom/fs_watch.h).
 *
 * Shape. A loop has one inotify instance (loop->fs, created by the first
 * watch), read through an internal fd watcher, so every backend works. The
 * kernel gives one watch descriptor (wd) per watched inode and instance, and
 * the same wd to two watches of the same directory; so wds live in a small
 * hash table of entries, each with the list of its subscriptions: one per
 * loom watch that watches the directory, with the directory's path relative
 * to that watch's root. Every inotify watch is added with the same mask, so
 * adding one again never changes what the kernel reports for the others,
 * and the kernel's watch is removed only with its last subscription.
 *
 * A read batch delivers each kernel event to the subscriptions of its wd.
 * Callbacks may close watches (that only marks them: their subscriptions go
 * when the handle is freed, at the end of the iteration) and start new ones
 * (a subscription made while an event is being delivered does not receive
 * it: `seq`). So no subscription list changes under an iteration except by
 * this file's own bookkeeping, which never runs inside a delivery loop.
 *
 * Renames. IN_MOVED_FROM leaves a pending record (watch, cookie, path); the
 * IN_MOVED_TO with the same cookie seen by the same watch turns it into one
 * rename. Records left after a batch are resolved as "moved out" by a short
 * timer, in case a read split the pair.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"

#define FS_MASK                                                                                    \
    (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO |                 \
     IN_DELETE_SELF | IN_MOVE_SELF | IN_EXCL_UNLINK)
#define FS_READ_BUF     (64 * 1024)
#define FS_MAX_READS    16 /* reads per readiness: other fds get their turn */
#define FS_MOVE_WAIT_MS 5  /* how long an unpaired IN_MOVED_FROM waits for its pair */

typedef struct fs_state fs_state;
typedef struct fs_entry fs_entry;
typedef struct fs_sub fs_sub;

struct fs_entry {
    int wd;
    fs_entry *hnext;
    loom__queue subs; /* fs_sub.enode */
};

struct fs_sub {
    loom__queue wnode; /* loom_fs_watch.dirs */
    loom__queue enode; /* fs_entry.subs */
    loom_fs_watch_t *watch;
    fs_entry *entry;
    uint64_t seq; /* the state's event count when made */
    char *rel;    /* relative to the root: "" for the root */
};

typedef struct fs_move {
    loom__queue node; /* fs_state.moves */
    loom_fs_watch_t *watch;
    uint32_t cookie;
    int is_dir;
    char *rel;
} fs_move;

struct fs_state {
    loom_loop_t *loop;
    int fd;
    loom__io io;
    fs_entry **buckets; /* the wd table: chained, power-of-two size */
    size_t nbuckets, nentries;
    loom__queue watches; /* open and closing loom_fs_watch.node */
    loom__queue moves;   /* fs_move: unpaired IN_MOVED_FROM */
    loom_timer_t *move_timer;
    loom__handle *sentinel;
    uint64_t seq;                       /* kernel events delivered so far */
    char *buf;                          /* FS_READ_BUF bytes, aligned for struct inotify_event */
    char path[PATH_MAX + NAME_MAX + 2]; /* the event being delivered's path */
};

struct loom_fs_watch {
    loom__handle h; /* first */
    fs_state *st;
    loom_fs_watch_cb cb;
    unsigned flags;
    bool closing;
    bool is_dir;
    loom__queue node; /* fs_state.watches */
    loom__queue dirs; /* fs_sub.wnode; the root's first */
    fs_sub *root_sub;
    size_t ndirs;
    char *root;
    /* Subdirectories that could not be watched at the start, reported
     * once from the pending phase. */
    loom__pending init_err;
    int init_code;
    unsigned init_count;
    char *init_msg;
};

/* --- Small helpers -------------------------------------------------------- */

/* "a" + "b" -> "a/b"; "" + "b" -> "b". Returns a malloc'd string or NULL. */
static char *path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = malloc(la + lb + 2);
    if (p == NULL)
        return NULL;
    if (la == 0) {
        memcpy(p, b, lb + 1);
        return p;
    }
    if (lb == 0) {
        memcpy(p, a, la + 1);
        return p;
    }
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static const char *watch_errtext(int code)
{
    if (code == LOOM_ENOSPC)
        return "the inotify watch limit is reached (raise /proc/sys/fs/inotify/max_user_watches)";
    if (code == LOOM_EMFILE)
        return "too many inotify instances or open files (see "
               "/proc/sys/fs/inotify/max_user_instances)";
    return loom_strerror(code);
}

/* --- The wd table ----------------------------------------------------------- */

static size_t wd_hash(const fs_state *st, int wd)
{
    return ((uint32_t)wd * 2654435761u) & (st->nbuckets - 1);
}

static fs_entry *entry_find(fs_state *st, int wd)
{
    for (fs_entry *e = st->buckets[wd_hash(st, wd)]; e; e = e->hnext)
        if (e->wd == wd)
            return e;
    return NULL;
}

/* Returns the entry for wd, made if new, or NULL on ENOMEM. */
static fs_entry *entry_get(fs_state *st, int wd)
{
    fs_entry *e = entry_find(st, wd);
    if (e)
        return e;
    if (st->nentries + 1 > st->nbuckets) {
        /* Doubling rehash, O(entries), amortised O(1) per entry. */
        size_t n = st->nbuckets * 2;
        fs_entry **b = calloc(n, sizeof *b);
        if (b == NULL)
            return NULL;
        size_t old = st->nbuckets;
        fs_entry **ob = st->buckets;
        st->buckets = b;
        st->nbuckets = n;
        for (size_t i = 0; i < old; i++) {
            for (fs_entry *c = ob[i], *next; c; c = next) {
                next = c->hnext;
                size_t k = wd_hash(st, c->wd);
                c->hnext = b[k];
                b[k] = c;
            }
        }
        free(ob);
    }
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->wd = wd;
    loom__queue_init(&e->subs);
    size_t k = wd_hash(st, wd);
    e->hnext = st->buckets[k];
    st->buckets[k] = e;
    st->nentries++;
    return e;
}

static void entry_free(fs_state *st, fs_entry *e)
{
    fs_entry **pp = &st->buckets[wd_hash(st, e->wd)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    st->nentries--;
    free(e);
}

/* Drops one subscription; the kernel's watch goes with the last one unless
 * the kernel already dropped it (`kernel_gone`: IN_IGNORED). */
static void sub_free(fs_state *st, fs_sub *s, bool kernel_gone)
{
    fs_entry *e = s->entry;
    loom__queue_remove(&s->wnode);
    loom__queue_remove(&s->enode);
    s->watch->ndirs--;
    if (s->watch->root_sub == s)
        s->watch->root_sub = NULL;
    free(s->rel);
    free(s);
    if (loom__queue_empty(&e->subs)) {
        if (!kernel_gone)
            inotify_rm_watch(st->fd, e->wd);
        entry_free(st, e);
    }
}

/* --- Delivery ---------------------------------------------------------------- */

static void emit(loom_fs_watch_t *w, loom_fs_event_type_t type, const char *path, const char *to,
                 int is_dir, int code, const char *msg)
{
    if (w->closing && type != LOOM_FS_CLOSED)
        return;
    loom_fs_event_t ev = {.type = type,
                          .path = path ? path : "",
                          .to = to,
                          .is_dir = is_dir,
                          .code = code,
                          .msg = msg};
    loom__op_scope s;
    loom__op_enter(w->h.loop, &s, NULL, NULL, w);
    w->cb(w, &ev, w->h.data);
    loom__op_leave(w->h.loop, &s);
}

static void emit_error(loom_fs_watch_t *w, int code, const char *what, const char *rel)
{
    char msg[PATH_MAX + 256];
    snprintf(msg, sizeof msg, "%s %s%s%s: %s", what, w->root, *rel ? "/" : "", rel,
             watch_errtext(code));
    emit(w, LOOM_FS_ERROR, rel, NULL, 0, code, msg);
}

static void watch_close_internal(loom_fs_watch_t *w);

/* --- Adding directories ----------------------------------------------------- */

/* Subscribes w to the directory `rel` (relative to its root; taken over,
 * freed on failure). Returns 0 with *out the new subscription, 1 when w
 * already watches that directory (*out is the existing one), or a LOOM_E*
 * code. `top`: the root itself (which may be a file and may be a symlink). */
static int watch_add(loom_fs_watch_t *w, char *rel, bool top, fs_sub **out)
{
    fs_state *st = w->st;
    char *full = path_join(w->root, rel);
    if (full == NULL) {
        free(rel);
        return LOOM_ENOMEM;
    }
    uint32_t mask = FS_MASK | (top ? 0 : IN_ONLYDIR | IN_DONT_FOLLOW);
    int wd = inotify_add_watch(st->fd, full, mask);
    int err = errno;
    free(full);
    if (wd < 0) {
        free(rel);
        return loom__err(err);
    }
    fs_entry *e = entry_get(st, wd);
    if (e == NULL) {
        free(rel);
        /* A kernel watch nobody else subscribes to would leak. */
        if (entry_find(st, wd) == NULL)
            inotify_rm_watch(st->fd, wd);
        return LOOM_ENOMEM;
    }
    /* O(subscriptions of this directory): one per watch of it. */
    for (loom__queue *q = e->subs.next; q != &e->subs; q = q->next) {
        fs_sub *s = LOOM__CONTAINER_OF(q, fs_sub, enode);
        if (s->watch == w) {
            /* Seen again under a new name (a rename not yet paired): the
             * kernel's name wins. */
            if (strcmp(s->rel, rel) != 0) {
                free(s->rel);
                s->rel = rel;
            } else {
                free(rel);
            }
            *out = s;
            return 1;
        }
    }
    fs_sub *s = calloc(1, sizeof *s);
    if (s == NULL) {
        free(rel);
        if (loom__queue_empty(&e->subs)) {
            inotify_rm_watch(st->fd, wd);
            entry_free(st, e);
        }
        return LOOM_ENOMEM;
    }
    s->watch = w;
    s->entry = e;
    s->rel = rel;
    s->seq = st->seq;
    loom__queue_insert_tail(&e->subs, &s->enode);
    loom__queue_insert_tail(&w->dirs, &s->wnode);
    w->ndirs++;
    *out = s;
    return 0;
}

/* Records a subdirectory that could not be watched at the start. */
static void init_error(loom_fs_watch_t *w, int code, const char *rel)
{
    if (w->init_count++ > 0)
        return;
    w->init_code = code;
    free(w->init_msg);
    w->init_msg = strdup(rel);
}

/* Scans the directories of w from `from` to the end of its list, watching
 * every subdirectory found (they are appended, so the scan goes on into
 * them: breadth first, no recursion). `emit_creates`: a create is reported
 * for every entry found (a new directory's contents). Errors are recorded
 * for the start-up report `at_start`, else reported as events. Stops when
 * the callback closes w. Returns 0, or LOOM_ENOSPC / LOOM_ENOMEM when
 * nothing more can be watched (reported already unless `at_start`).
 * O(entries of the subtree). */
static int watch_scan(loom_fs_watch_t *w, fs_sub *from, bool emit_creates, bool at_start)
{
    loom__queue *q = &from->wnode;
    while (q != &w->dirs && !w->closing) {
        fs_sub *s = LOOM__CONTAINER_OF(q, fs_sub, wnode);
        char *full = path_join(w->root, s->rel);
        if (full == NULL)
            return LOOM_ENOMEM;
        DIR *d = opendir(full);
        int derr = errno;
        free(full);
        if (d == NULL) {
            /* Gone already (its IN_IGNORED will drop it) or unreadable. */
            if (derr != ENOENT && derr != ENOTDIR) {
                if (at_start)
                    init_error(w, loom__err(derr), s->rel);
                else
                    emit_error(w, loom__err(derr), "cannot read directory", s->rel);
            }
            q = q->next;
            continue;
        }
        struct dirent *de;
        while (!w->closing && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.' &&
                (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0)))
                continue;
            int is_dir = de->d_type == DT_DIR;
            if (de->d_type == DT_UNKNOWN) {
                struct stat sb;
                is_dir = fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
                         S_ISDIR(sb.st_mode);
            }
            char *rel = path_join(s->rel, de->d_name);
            if (rel == NULL) {
                closedir(d);
                return LOOM_ENOMEM;
            }
            if (emit_creates)
                emit(w, LOOM_FS_CREATE, rel, NULL, is_dir, 0, NULL);
            if (!is_dir || w->closing) {
                free(rel);
                continue;
            }
            char *copy = strdup(rel); /* watch_add() takes rel */
            fs_sub *ns;
            int r = watch_add(w, rel, false, &ns);
            if (r == LOOM_ENOSPC || r == LOOM_ENOMEM) {
                if (!at_start)
                    emit_error(w, r, "cannot watch", copy ? copy : s->rel);
                free(copy);
                closedir(d);
                return r;
            }
            if (r < 0 && r != LOOM_ENOENT && r != LOOM_ENOTDIR) {
                if (at_start)
                    init_error(w, r, copy ? copy : s->rel);
                else
                    emit_error(w, r, "cannot watch", copy ? copy : s->rel);
            }
            free(copy);
        }
        closedir(d);
        q = q->next;
    }
    return 0;
}

/* A new directory `rel` (taken over) appeared under w: watch it and its
 * subtree. `creates`: report what is already in it (a fresh mkdir) rather
 * than staying silent (a directory moved in). */
static void watch_new_dir(loom_fs_watch_t *w, char *rel, bool creates)
{
    char *copy = strdup(rel);
    fs_sub *s;
    int r = watch_add(w, rel, false, &s);
    if (r == 0)
        watch_scan(w, s, creates, false);
    else if (r < 0 && r != LOOM_ENOENT && r != LOOM_ENOTDIR && copy)
        emit_error(w, r, "cannot watch", copy);
    free(copy);
}

/* Drops w's subscriptions of `rel` and everything below it. O(directories
 * of w). */
static void watch_drop_subtree(loom_fs_watch_t *w, const char *rel)
{
    size_t n = strlen(rel);
    loom__queue *q = w->dirs.next;
    while (q != &w->dirs) {
        fs_sub *s = LOOM__CONTAINER_OF(q, fs_sub, wnode);
        q = q->next;
        if (s != w->root_sub && strncmp(s->rel, rel, n) == 0 &&
            (s->rel[n] == 0 || s->rel[n] == '/'))
            sub_free(w->st, s, false);
    }
}

/* Renames w's subscriptions of `from` and below to `to`. O(directories of
 * w). */
static void watch_rename_subtree(loom_fs_watch_t *w, const char *from, const char *to)
{
    size_t n = strlen(from), m = strlen(to);
    for (loom__queue *q = w->dirs.next; q != &w->dirs; q = q->next) {
        fs_sub *s = LOOM__CONTAINER_OF(q, fs_sub, wnode);
        if (s == w->root_sub || strncmp(s->rel, from, n) != 0 ||
            (s->rel[n] != 0 && s->rel[n] != '/'))
            continue;
        size_t rest = strlen(s->rel + n);
        char *p = malloc(m + rest + 1);
        if (p == NULL)
            continue; /* keeps the old name: paths below it are stale */
        memcpy(p, to, m);
        memcpy(p + m, s->rel + n, rest + 1);
        free(s->rel);
        s->rel = p;
    }
}

/* --- Moves ------------------------------------------------------------------- */

static void move_free(fs_move *m)
{
    loom__queue_remove(&m->node);
    free(m->rel);
    free(m);
}

/* Every pending IN_MOVED_FROM becomes "moved out". */
static void moves_resolve(fs_state *st)
{
    while (!loom__queue_empty(&st->moves)) {
        fs_move *m = LOOM__CONTAINER_OF(st->moves.next, fs_move, node);
        loom__queue_remove(&m->node);
        loom_fs_watch_t *w = m->watch;
        if (!w->closing) {
            if (m->is_dir && (w->flags & LOOM_FS_WATCH_RECURSIVE))
                watch_drop_subtree(w, m->rel);
            emit(w, LOOM_FS_MOVED_OUT, m->rel, NULL, m->is_dir, 0, NULL);
        }
        free(m->rel);
        free(m);
    }
}

static void on_move_timer(loom_timer_t *timer, void *data)
{
    (void)timer;
    moves_resolve(data);
}

static void on_moved_from(loom_fs_watch_t *w, uint32_t cookie, char *rel, int is_dir)
{
    fs_move *m = calloc(1, sizeof *m);
    if (m == NULL) {
        /* Without a record it can only be reported as gone at once. */
        emit(w, LOOM_FS_MOVED_OUT, rel, NULL, is_dir, 0, NULL);
        free(rel);
        return;
    }
    m->watch = w;
    m->cookie = cookie;
    m->is_dir = is_dir;
    m->rel = rel;
    loom__queue_insert_tail(&w->st->moves, &m->node);
}

static void on_moved_to(loom_fs_watch_t *w, uint32_t cookie, char *rel, int is_dir)
{
    fs_state *st = w->st;
    bool recursive = (w->flags & LOOM_FS_WATCH_RECURSIVE) && is_dir;
    /* O(pending moves): almost always zero or one. */
    for (loom__queue *q = st->moves.next; q != &st->moves; q = q->next) {
        fs_move *m = LOOM__CONTAINER_OF(q, fs_move, node);
        if (m->watch != w || m->cookie != cookie)
            continue;
        loom__queue_remove(&m->node);
        if (recursive)
            watch_rename_subtree(w, m->rel, rel);
        emit(w, LOOM_FS_RENAME, m->rel, rel, is_dir, 0, NULL);
        free(m->rel);
        free(m);
        free(rel);
        return;
    }
    emit(w, LOOM_FS_MOVED_IN, rel, NULL, is_dir, 0, NULL);
    if (recursive && !w->closing)
        watch_new_dir(w, rel, false);
    else
        free(rel);
}

/* --- Reading -------------------------------------------------------------------- */

/* One kernel event for one subscription. */
static void deliver(fs_sub *s, const struct inotify_event *ev)
{
    loom_fs_watch_t *w = s->watch;
    uint32_t mask = ev->mask;
    int is_dir = (mask & IN_ISDIR) != 0;
    bool recursive = (w->flags & LOOM_FS_WATCH_RECURSIVE) != 0;
    if (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        /* A subdirectory's own end is reported by its parent. */
        if (s != w->root_sub)
            return;
        if (mask & IN_DELETE_SELF) {
            emit(w, LOOM_FS_DELETE, "", NULL, w->is_dir, 0, NULL);
        } else {
            emit(w, LOOM_FS_MOVED_OUT, "", NULL, w->is_dir, 0, NULL);
            watch_close_internal(w);
        }
        return;
    }
    /* The event's path, built in the state's buffer: no allocation for the
     * common kinds. A subscription's path fits PATH_MAX when it is made (the
     * kernel refuses a longer one), and a name NAME_MAX. */
    char *rel = w->st->path;
    size_t n = strlen(s->rel);
    if (n + 2 + NAME_MAX > sizeof w->st->path) {
        /* Renamed into a longer path than PATH_MAX since it was watched. */
        emit_error(w, LOOM_ENAMETOOLONG, "cannot report an event under", s->rel);
        return;
    }
    memcpy(rel, s->rel, n);
    if (ev->len) {
        if (n)
            rel[n++] = '/';
        size_t k = strnlen(ev->name, NAME_MAX);
        memcpy(rel + n, ev->name, k);
        n += k;
    }
    rel[n] = 0;
    if (mask & IN_CREATE) {
        emit(w, LOOM_FS_CREATE, rel, NULL, is_dir, 0, NULL);
        if (is_dir && recursive && !w->closing) {
            char *copy = strdup(rel);
            if (copy)
                watch_new_dir(w, copy, true);
            else
                emit_error(w, LOOM_ENOMEM, "cannot watch", rel);
        }
    } else if (mask & IN_DELETE) {
        emit(w, LOOM_FS_DELETE, rel, NULL, is_dir, 0, NULL);
    } else if (mask & IN_MODIFY) {
        emit(w, LOOM_FS_MODIFY, rel, NULL, is_dir, 0, NULL);
    } else if (mask & IN_ATTRIB) {
        emit(w, LOOM_FS_ATTRIB, rel, NULL, is_dir, 0, NULL);
    } else if (mask & (IN_MOVED_FROM | IN_MOVED_TO)) {
        /* Kept past this event (a pending move, a renamed subtree). */
        char *copy = strdup(rel);
        if (copy == NULL)
            emit_error(w, LOOM_ENOMEM, "cannot report a move under", s->rel);
        else if (mask & IN_MOVED_FROM)
            on_moved_from(w, ev->cookie, copy, is_dir);
        else
            on_moved_to(w, ev->cookie, copy, is_dir);
    }
}

static void handle_event(fs_state *st, const struct inotify_event *ev)
{
    st->seq++;
    if (ev->mask & IN_Q_OVERFLOW) {
        for (loom__queue *q = st->watches.next; q != &st->watches; q = q->next)
            emit(LOOM__CONTAINER_OF(q, loom_fs_watch_t, node), LOOM_FS_OVERFLOW, "", NULL, 0, 0,
                 NULL);
        return;
    }
    fs_entry *e = entry_find(st, ev->wd);
    if (e == NULL)
        return; /* a watch removed since */
    if (ev->mask & IN_IGNORED) {
        /* The kernel dropped the watch (deleted, unmounted): so do we. A
         * watch whose root it was ends. */
        bool last;
        do {
            fs_sub *s = LOOM__CONTAINER_OF(e->subs.next, fs_sub, enode);
            last = s->enode.next == &e->subs; /* then e goes with s */
            loom_fs_watch_t *w = s->watch;
            bool root = s == w->root_sub;
            sub_free(st, s, true);
            if (root)
                watch_close_internal(w);
        } while (!last);
        return;
    }
    /* New subscriptions land at the tail and are skipped by `seq`; none is
     * removed while this runs (closing only marks a watch). */
    for (loom__queue *q = e->subs.next; q != &e->subs; q = q->next) {
        fs_sub *s = LOOM__CONTAINER_OF(q, fs_sub, enode);
        if (s->seq == st->seq || s->watch->closing)
            continue;
        deliver(s, ev);
    }
}

/* The instance cannot be read (`code`): not a passing condition (its fd was
 * closed or replaced under loom, EBADF, EINVAL, EISDIR...), and reading it
 * again on every wake-up would fail alike, so it is reported once and the
 * instance retired. The loop lets go of it first, so that a watch started
 * from a callback gets a new instance; then each of its watches hears one
 * LOOM_FS_ERROR naming its root, and is closed (LOOM_FS_CLOSED follows, at
 * the end of the iteration: events were lost, the application re-watches
 * and rescans); the state goes after them, by its sentinel. */
static void state_retire(fs_state *st, int code)
{
    loom_loop_t *loop = st->loop;
    loom__io_deinit(loop, &st->io);
    loop->fs = NULL;
    loop->fs_free = NULL;
    /* Callbacks may close watches (only marked) and start new ones (in the
     * new state's list): this list changes under the walk in neither way. */
    for (loom__queue *q = st->watches.next; q != &st->watches; q = q->next) {
        loom_fs_watch_t *w = LOOM__CONTAINER_OF(q, loom_fs_watch_t, node);
        char msg[PATH_MAX + 256];
        snprintf(msg, sizeof msg, "cannot read the inotify events of %s: %s; the watch is closed",
                 w->root, watch_errtext(code));
        emit(w, LOOM_FS_ERROR, "", NULL, 0, code, msg);
    }
    for (loom__queue *q = st->watches.next; q != &st->watches; q = q->next)
        watch_close_internal(LOOM__CONTAINER_OF(q, loom_fs_watch_t, node));
    loom_timer_close(st->move_timer);
    loom__handle_close(st->sentinel);
}

static void on_inotify(loom__io *io, unsigned events)
{
    fs_state *st = LOOM__CONTAINER_OF(io, fs_state, io);
    (void)events;
    for (int i = 0; i < FS_MAX_READS; i++) {
        ssize_t n = read(st->fd, st->buf, FS_READ_BUF);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                break;
            state_retire(st, loom__err(errno));
            return;
        }
        for (char *p = st->buf; p < st->buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            handle_event(st, ev);
            p += sizeof *ev + ev->len;
        }
        if ((size_t)n < FS_READ_BUF - sizeof(struct inotify_event) - NAME_MAX - 1)
            break; /* the queue was drained */
    }
    if (!loom__queue_empty(&st->moves) && !loom_timer_active(st->move_timer))
        loom_timer_start(st->move_timer, FS_MOVE_WAIT_MS, 0);
}

/* --- The loop's state -------------------------------------------------------------- */

static void state_free_fn(loom__handle *h)
{
    fs_state *st = h->data;
    free(st->buckets);
    free(st->buf);
    if (st->fd >= 0)
        close(st->fd);
    free(st);
    free(h);
}

/* loop->fs_free: at loom_loop_free(). Open watches are closed (their
 * LOOM_FS_CLOSED runs when the loop drains its closing list); the state
 * goes after them, by its sentinel. */
static void fs_loop_free(loom_loop_t *loop)
{
    fs_state *st = loop->fs;
    for (loom__queue *q = st->watches.next; q != &st->watches; q = q->next)
        watch_close_internal(LOOM__CONTAINER_OF(q, loom_fs_watch_t, node));
    loom_timer_close(st->move_timer);
    loom__io_deinit(loop, &st->io);
    loom__handle_close(st->sentinel);
    loop->fs = NULL;
    loop->fs_free = NULL;
}

static int state_get(loom_loop_t *loop, fs_state **out)
{
    if (loop->fs) {
        *out = loop->fs;
        return 0;
    }
    int r = LOOM_ENOMEM;
    fs_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        goto fail_state;
    st->loop = loop;
    loom__queue_init(&st->watches);
    loom__queue_init(&st->moves);
    st->nbuckets = 64;
    st->buckets = calloc(st->nbuckets, sizeof *st->buckets);
    st->buf = malloc(FS_READ_BUF);
    if (st->buckets == NULL || st->buf == NULL)
        goto fail_bufs;
    st->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (st->fd < 0) {
        r = loom__err(errno);
        goto fail_bufs;
    }
    r = loom__io_init(loop, &st->io, st->fd, on_inotify);
    if (r < 0)
        goto fail_fd;
    r = loom__io_set(loop, &st->io, LOOM_READABLE);
    if (r < 0)
        goto fail_io;
    r = loom_timer_new(loop, &st->move_timer, on_move_timer, st);
    if (r < 0)
        goto fail_io;
    /* loom's own: neither live nor keeping the loop alive. */
    loom__handle_own(&st->move_timer->h);
    st->sentinel = loom__sentinel_new(loop, st, state_free_fn);
    if (st->sentinel == NULL) {
        r = LOOM_ENOMEM;
        goto fail_timer;
    }
    loop->fs = st;
    loop->fs_free = fs_loop_free;
    *out = st;
    return 0;

fail_timer:
    loom_timer_close(st->move_timer);
fail_io:
    loom__io_deinit(loop, &st->io);
fail_fd:
    close(st->fd);
fail_bufs:
    free(st->buckets);
    free(st->buf);
    free(st);
fail_state:
    return r;
}

/* --- Watches ------------------------------------------------------------------------ */

/* The handle's free function, at the end of the iteration: the watch's
 * subscriptions and pending moves go, then its close notification. */
static void watch_free_fn(loom__handle *h)
{
    loom_fs_watch_t *w = (loom_fs_watch_t *)h;
    fs_state *st = w->st;
    for (loom__queue *q = st->moves.next; q != &st->moves;) {
        fs_move *m = LOOM__CONTAINER_OF(q, fs_move, node);
        q = q->next;
        if (m->watch == w)
            move_free(m);
    }
    while (!loom__queue_empty(&w->dirs))
        sub_free(st, LOOM__CONTAINER_OF(w->dirs.next, fs_sub, wnode), false);
    loom__queue_remove(&w->node);
    emit(w, LOOM_FS_CLOSED, "", NULL, w->is_dir, 0, NULL);
    free(w->init_msg);
    free(w->root);
    free(w);
}

static void watch_close_internal(loom_fs_watch_t *w)
{
    if (w->closing)
        return;
    w->closing = true;
    loom__pending_cancel(&w->init_err);
    loom__handle_stop(&w->h);
    loom__handle_close(&w->h);
}

static void on_init_error(loom__pending *p)
{
    loom_fs_watch_t *w = LOOM__CONTAINER_OF(p, loom_fs_watch_t, init_err);
    p->node.next = NULL;
    char msg[PATH_MAX + 256];
    const char *rel = w->init_msg ? w->init_msg : "";
    if (w->init_count > 1)
        snprintf(msg, sizeof msg, "cannot watch %u subdirectories of %s, the first %s/%s: %s",
                 w->init_count, w->root, w->root, rel, watch_errtext(w->init_code));
    else
        snprintf(msg, sizeof msg, "cannot watch %s/%s: %s", w->root, rel,
                 watch_errtext(w->init_code));
    emit(w, LOOM_FS_ERROR, rel, NULL, 1, w->init_code, msg);
}

int loom_fs_watch(loom_loop_t *loop, const char *path, unsigned flags, loom_fs_watch_cb cb,
                  void *data, loom_fs_watch_t **out)
{
    if (loop == NULL || path == NULL || cb == NULL || out == NULL || *path == 0 ||
        (flags & ~(unsigned)LOOM_FS_WATCH_RECURSIVE))
        return LOOM_EINVAL;
    if (loop->freeing)
        return LOOM_ECLOSED;
    fs_state *st = NULL;
    int r = state_get(loop, &st);
    if (r < 0) {
        loom_log(loop, LOOM_LOG_ERR, "fs watch: cannot watch %s: %s", path, watch_errtext(r));
        return r;
    }
    loom_fs_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return LOOM_ENOMEM;
    w->root = strdup(path);
    char *rel = strdup("");
    if (w->root == NULL || rel == NULL) {
        free(rel);
        free(w->root);
        free(w);
        return LOOM_ENOMEM;
    }
    /* "dir/" and "dir" are the same root; "/" stays "/". */
    for (size_t n = strlen(w->root); n > 1 && w->root[n - 1] == '/'; n--)
        w->root[n - 1] = 0;
    w->st = st;
    w->cb = cb;
    w->flags = flags;
    loom__queue_init(&w->dirs);
    struct stat sb;
    w->is_dir = stat(w->root, &sb) == 0 && S_ISDIR(sb.st_mode);
    loom__handle_init(loop, &w->h, LOOM__T_OTHER, watch_free_fn, false);
    w->h.data = data;
    loom__queue_insert_tail(&st->watches, &w->node);
    fs_sub *root;
    r = watch_add(w, rel, true, &root);
    if (r < 0)
        goto fail;
    w->root_sub = root;
    if (w->is_dir && (flags & LOOM_FS_WATCH_RECURSIVE)) {
        r = watch_scan(w, root, false, true);
        if (r < 0)
            goto fail;
    }
    if (w->init_count) {
        w->init_err.fn = on_init_error;
        loom__pending_queue(loop, &w->init_err);
    }
    loom__handle_start(&w->h);
    *out = w;
    return 0;

fail:
    loom_log(loop, LOOM_LOG_ERR, "fs watch: cannot watch %s: %s", w->root, watch_errtext(r));
    while (!loom__queue_empty(&w->dirs))
        sub_free(st, LOOM__CONTAINER_OF(w->dirs.next, fs_sub, wnode), false);
    loom__queue_remove(&w->node);
    loom__handle_forget(&w->h);
    free(w->init_msg);
    free(w->root);
    free(w);
    return r;
}

void loom_fs_watch_close(loom_fs_watch_t *watch)
{
    if (watch == NULL)
        return;
    watch_close_internal(watch);
}

const char *loom_fs_watch_path(const loom_fs_watch_t *watch)
{
    return watch->root;
}

size_t loom_fs_watch_dirs(const loom_fs_watch_t *watch)
{
    return watch->ndirs;
}

void *loom_fs_watch_data(const loom_fs_watch_t *watch)
{
    return watch->h.data;
}

void loom_fs_watch_set_data(loom_fs_watch_t *watch, void *data)
{
    watch->h.data = data;
}

loom_loop_t *loom_fs_watch_loop(const loom_fs_watch_t *watch)
{
    return watch->h.loop;
}

const char *loom_fs_event_name(loom_fs_event_type_t type)
{
    switch (type) {
    case LOOM_FS_CREATE:
        return "create";
    case LOOM_FS_DELETE:
        return "delete";
    case LOOM_FS_MODIFY:
        return "modify";
    case LOOM_FS_ATTRIB:
        return "attrib";
    case LOOM_FS_RENAME:
        return "rename";
    case LOOM_FS_MOVED_OUT:
        return "moved out";
    case LOOM_FS_MOVED_IN:
        return "moved in";
    case LOOM_FS_OVERFLOW:
        return "overflow";
    case LOOM_FS_ERROR:
        return "error";
    case LOOM_FS_CLOSED:
        return "closed";
    }
    return "unknown";
}
