/* loom/fs_watch.h - file-system watching (cl-async's fs-watch), on inotify.
 *
 * loom_fs_watch() watches a directory (or a single file) and reports what
 * happens under it as loom_fs_event_t values: created, deleted, modified,
 * attributes changed, and renamed. A rename inside the watched tree is ONE
 * event with both names: the kernel's IN_MOVED_FROM and IN_MOVED_TO halves
 * are paired by their cookie. A move out of the tree is a delete-like
 * LOOM_FS_MOVED_OUT and a move into it a create-like LOOM_FS_MOVED_IN. An
 * unpaired "moved from" is resolved as moved out a few milliseconds after
 * the read batch that brought it (the kernel queues both halves together,
 * so the wait is only for a read that split them), which is the one case
 * where an event is delivered after later ones.
 *
 * Paths in events are relative to the watched root ("src/main.c"; "" is the
 * root itself), so the application never parses kernel paths.
 *
 * Recursive watching (LOOM_FS_WATCH_RECURSIVE): every subdirectory is
 * watched at the start, and each new one as it appears. A new directory is
 * scanned once it is watched, and a create is reported for everything
 * found in it (files made in it before its watch was added would otherwise
 * be missed), so a file can be reported created twice when it appears
 * during that scan. A directory moved into the tree is watched with its
 * subtree, without creates for its contents (the MOVED_IN of the directory
 * says "rescan this"). Directories that go away (deleted, moved out) are
 * dropped. Symbolic links are not followed below the root.
 *
 * Overflow: when the kernel's queue overflowed (more than
 * /proc/sys/fs/inotify/max_queued_events events unread), events were lost:
 * every watch of the loop gets LOOM_FS_OVERFLOW and should rescan.
 *
 * Mechanism: one inotify instance per loop, shared by all its watches and
 * read through the loop's fd watching (loom/io.h), so it works on every
 * backend, the foreign ones included. Watches of the same directory share
 * the kernel's watch. Each inotify watch costs kernel memory and counts
 * against the per-user limit /proc/sys/fs/inotify/max_user_watches; a
 * recursive watch uses one per directory.
 *
 * Read errors: an error reading the loop's inotify instance (its fd closed
 * or replaced under loom: EBADF, EINVAL, EISDIR...) would recur on every
 * wake-up, so it is reported once: the loop gives the instance up, each of
 * its watches gets one LOOM_FS_ERROR naming its root ("cannot read the
 * inotify events of DIR: REASON; the watch is closed") and then
 * LOOM_FS_CLOSED. Events were lost: watch again (loom_fs_watch() then opens
 * a new instance, from that callback too) and rescan.
 *
 * Close: loom_fs_watch_close() is the one close path; the callback then
 * gets LOOM_FS_CLOSED exactly once, at the end of the iteration, whatever
 * closed the watch (the application, the root being deleted or moved, or
 * loom_loop_free()). Nothing else is delivered after the close call. An open
 * watch keeps the loop alive.
 *
 * After fork() and loom_loop_fork(), the child's loop shares the parent's
 * inotify instance: close the inherited watches in the child.
 *
 * Every function here is for the loop's thread only.
 */
#ifndef LOOM_FS_WATCH_H
#define LOOM_FS_WATCH_H

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_fs_watch loom_fs_watch_t;

/* loom_fs_watch() flags. */
enum {
    LOOM_FS_WATCH_RECURSIVE = 1u << 0 /* watch every subdirectory, present and future */
};

/* What happened. `path` is relative to the watched root. */
typedef enum loom_fs_event_type {
    LOOM_FS_CREATE = 1, /* path was created */
    LOOM_FS_DELETE,     /* path was deleted ("" : the root itself; the watch then closes) */
    LOOM_FS_MODIFY,     /* path's contents were written */
    LOOM_FS_ATTRIB,     /* path's metadata changed (mode, owner, times, links) */
    LOOM_FS_RENAME,     /* path was renamed to `to`, both inside the tree */
    LOOM_FS_MOVED_OUT,  /* path was moved out of the tree: gone, like a delete
                           ("": the root itself was moved; the watch then closes) */
    LOOM_FS_MOVED_IN,   /* path was moved into the tree: new, like a create */
    LOOM_FS_OVERFLOW,   /* the kernel dropped events: rescan (path is "") */
    LOOM_FS_ERROR,      /* `code` and `msg` say what failed; the watch goes on, except
                           after a read error of the loop's inotify instance (below) */
    LOOM_FS_CLOSED      /* the last event of the watch: it is dead once the callback returns */
} loom_fs_event_type_t;

/* An event, valid only during the callback. */
typedef struct loom_fs_event {
    loom_fs_event_type_t type;
    const char *path; /* relative to the root, never NULL ("" for the root) */
    const char *to;   /* LOOM_FS_RENAME: the new path; else NULL */
    int is_dir;       /* 1 when path names a directory, as far as the kernel said */
    int code;         /* LOOM_FS_ERROR: a LOOM_E* code; else 0 */
    const char *msg;  /* LOOM_FS_ERROR: what failed, naming the path; else NULL */
} loom_fs_event_t;

/* cb(watch, event, data). The callback may close this or any watch, and
 * start new ones. */
typedef void (*loom_fs_watch_cb)(loom_fs_watch_t *watch, const loom_fs_event_t *ev, void *data);

/* Starts watching `path` (a directory, or a file: then events concern the
 * file itself, with path ""). `flags` is 0 or LOOM_FS_WATCH_RECURSIVE
 * (ignored for a file). `*out` receives the watch, owned by the loop until
 * its LOOM_FS_CLOSED event. Returns 0, or LOOM_EINVAL (NULL path, cb or
 * out; unknown flags), LOOM_ENOENT, LOOM_EACCES, LOOM_ENOTDIR..., LOOM_ENOSPC
 * (the inotify watch limit is reached), LOOM_EMFILE (no inotify instance
 * could be had), LOOM_ENOMEM. On failure nothing is watched, no callback
 * runs, and the loop's logger (loom_loop_opts.on_log) hears a LOOM_LOG_ERR
 * line naming the path and the reason (for LOOM_ENOSPC, the limit to raise:
 * /proc/sys/fs/inotify/max_user_watches). Subdirectories that cannot be
 * watched at the start for other reasons (permissions) do not fail the
 * call: they are reported as one LOOM_FS_ERROR event from the loop. */
LOOM_EXTERN int loom_fs_watch(loom_loop_t *loop, const char *path, unsigned flags,
                              loom_fs_watch_cb cb, void *data, loom_fs_watch_t **out);

/* Closes the watch: no event is delivered after this call except
 * LOOM_FS_CLOSED, at the end of the iteration. Harmless twice and from the
 * watch's own callback. NULL is ignored. */
LOOM_EXTERN void loom_fs_watch_close(loom_fs_watch_t *watch);

/* The watched path, as given (without trailing slashes). */
LOOM_EXTERN const char *loom_fs_watch_path(const loom_fs_watch_t *watch);

/* The number of directories (inotify watches) the watch uses: 1 without
 * LOOM_FS_WATCH_RECURSIVE. */
LOOM_EXTERN size_t loom_fs_watch_dirs(const loom_fs_watch_t *watch);

/* The user slot and the loop. */
LOOM_EXTERN void *loom_fs_watch_data(const loom_fs_watch_t *watch);
LOOM_EXTERN void loom_fs_watch_set_data(loom_fs_watch_t *watch, void *data);
LOOM_EXTERN loom_loop_t *loom_fs_watch_loop(const loom_fs_watch_t *watch);

/* The static name of an event type ("create", "rename", "moved out"...). */
LOOM_EXTERN const char *loom_fs_event_name(loom_fs_event_type_t type);

#ifdef __cplusplus
}
#endif
#endif
