/* core/backend.c - finding a backend by name: the built-in ones, then
 * plugins (libloom-backend-<name>.so) loaded with dlopen.
 *
 * The plugin search path is $LOOM_PLUGIN_PATH (colon-separated folders),
 * then the `loom/` folder next to the libloom in use (found with dladdr, so
 * an install to any prefix finds its plugins), then the configured install
 * folder (LOOM_PLUGIN_DIR), then the dynamic loader's own search. A loaded
 * plugin stays loaded for the life of the process (dlopen is process-wide;
 * this table, behind a mutex, is the only global state besides signals).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#if LOOM_LINKED_IO_URING
extern const loom_backend_t loom__backend_io_uring;
#endif
#if LOOM_LINKED_LIBUV
extern const loom_backend_t loom__backend_uv;
#endif
#if LOOM_LINKED_LIBEVENT
extern const loom_backend_t loom__backend_event;
#endif
#if LOOM_LINKED_LIBEV
extern const loom_backend_t loom__backend_ev;
#endif

static const loom_backend_t *const loom__builtin[] = {
#if LOOM_HAVE_EPOLL
    &loom__backend_epoll,
#endif
    &loom__backend_poll,
#if LOOM_LINKED_IO_URING
    &loom__backend_io_uring,
#endif
#if LOOM_LINKED_LIBUV
    &loom__backend_uv,
#endif
#if LOOM_LINKED_LIBEVENT
    &loom__backend_event,
#endif
#if LOOM_LINKED_LIBEV
    &loom__backend_ev,
#endif
};
#define LOOM__NBUILTIN (sizeof loom__builtin / sizeof loom__builtin[0])

static const char *const *loom__builtin_names(void)
{
    static const char *const names[] = {
#if LOOM_HAVE_EPOLL
        "epoll",
#endif
        "poll",
#if LOOM_LINKED_IO_URING
        "io_uring",
#endif
#if LOOM_LINKED_LIBUV
        "uv",
#endif
#if LOOM_LINKED_LIBEVENT
        "event",
#endif
#if LOOM_LINKED_LIBEV
        "ev",
#endif
        NULL,
    };
    return names;
}

const char *const *loom_backend_builtin(void)
{
    return loom__builtin_names();
}

typedef struct loom__plugin {
    struct loom__plugin *next;
    const loom_backend_t *be;
    char name[32];
} loom__plugin;

static pthread_mutex_t loom__plugin_lock = PTHREAD_MUTEX_INITIALIZER;
static loom__plugin *loom__plugins;

/* What a failed search tried, for the log line that goes with
 * LOOM_ENOPLUGIN: the paths, and the loader's last complaint. */
typedef struct loom__search {
    char *buf;
    size_t size, len;
} loom__search;

static void loom__search_note(loom__search *why, const char *fmt, const char *a, const char *b)
{
    if (why == NULL || why->len + 1 >= why->size)
        return;
    int n = snprintf(why->buf + why->len, why->size - why->len, fmt, a, b);
    if (n > 0)
        why->len += (size_t)n < why->size - why->len ? (size_t)n : why->size - why->len - 1;
}

static const loom_backend_t *loom__plugin_try(const char *path, const char *name, loom__search *why)
{
    loom__search_note(why, "%s%s", why && why->len ? ", " : "", path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        /* A missing file is the common case; anything else is worth saying. */
        if (e && strstr(e, "No such file") == NULL)
            loom__search_note(why, " (%s%s)", e, "");
        return NULL;
    }
    const loom_backend_t *(*entry)(void);
    *(void **)&entry = dlsym(h, "loom_backend_plugin");
    const loom_backend_t *be = entry ? entry() : NULL;
    if (be == NULL || strcmp(be->name, name) != 0) {
        /* A plugin must be what its file name says. */
        loom__search_note(why, " (%s%s)",
                          be ? "a plugin of another backend: " : "not a loom plugin",
                          be ? be->name : "");
        dlclose(h);
        return NULL;
    }
    return be; /* never unloaded */
}

/* The folder of the libloom this code is part of (the shared library, or the
 * executable it is linked into), with `/loom` appended. 0 if unknown. */
static int loom__own_plugin_dir(char *out, size_t size)
{
    Dl_info info;
    if (dladdr((void *)loom_backend_find, &info) == 0 || info.dli_fname == NULL)
        return 0;
    const char *slash = strrchr(info.dli_fname, '/');
    if (slash == NULL)
        return 0;
    int n = snprintf(out, size, "%.*s/loom", (int)(slash - info.dli_fname), info.dli_fname);
    return n > 0 && (size_t)n < size;
}

static const loom_backend_t *loom__plugin_load(const char *name, int *err, loom__search *why)
{
    pthread_mutex_lock(&loom__plugin_lock);
    for (loom__plugin *p = loom__plugins; p; p = p->next) {
        if (strcmp(p->name, name) == 0) {
            pthread_mutex_unlock(&loom__plugin_lock);
            return p->be;
        }
    }
    char file[96], path[4096 + 128], dir[4096];
    snprintf(file, sizeof file, "libloom-backend-%s.so", name);
    const loom_backend_t *be = NULL;
    const char *env = getenv("LOOM_PLUGIN_PATH");
    while (env && *env && be == NULL) {
        const char *colon = strchr(env, ':');
        size_t len = colon ? (size_t)(colon - env) : strlen(env);
        if (len > 0 && len < sizeof path - sizeof file - 2) {
            snprintf(path, sizeof path, "%.*s/%s", (int)len, env, file);
            be = loom__plugin_try(path, name, why);
        }
        env = colon ? colon + 1 : NULL;
    }
    bool own = loom__own_plugin_dir(dir, sizeof dir - sizeof file - 2);
    if (be == NULL && own) {
        snprintf(path, sizeof path, "%s/%s", dir, file);
        be = loom__plugin_try(path, name, why);
    }
    if (be == NULL && !(own && strcmp(dir, LOOM_PLUGIN_DIR) == 0)) {
        snprintf(path, sizeof path, "%s/%s", LOOM_PLUGIN_DIR, file);
        be = loom__plugin_try(path, name, why);
    }
    if (be == NULL) {
        be = loom__plugin_try(file, name, why);
        loom__search_note(why, "%s%s", be ? "" : " on the loader's search path", "");
    }
    if (be != NULL) {
        loom__plugin *p = calloc(1, sizeof *p);
        if (p != NULL) {
            p->be = be;
            snprintf(p->name, sizeof p->name, "%s", name);
            p->next = loom__plugins;
            loom__plugins = p;
        }
    } else if (err) {
        *err = LOOM_ENOPLUGIN;
    }
    pthread_mutex_unlock(&loom__plugin_lock);
    return be;
}

static int loom__name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static const loom_backend_t *loom__backend_find(const char *name, int *err, loom__search *why)
{
    if (err)
        *err = 0;
    if (name == NULL || !loom__name_ok(name)) {
        if (err)
            *err = LOOM_EBACKEND;
        return NULL;
    }
    for (size_t i = 0; i < LOOM__NBUILTIN; i++)
        if (strcmp(loom__builtin[i]->name, name) == 0)
            return loom__builtin[i];
    return loom__plugin_load(name, err, why);
}

const loom_backend_t *loom_backend_find(const char *name, int *err)
{
    return loom__backend_find(name, err, NULL);
}

const loom_backend_t *loom__backend_select(const char *name, int *err, char *why, size_t size)
{
    if (name == NULL || name[0] == '\0')
        return loom__builtin[0];
    loom__search s = {why, size, 0};
    if (why && size)
        why[0] = '\0';
    return loom__backend_find(name, err, why && size ? &s : NULL);
}
