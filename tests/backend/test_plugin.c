/* test_plugin: loading backends from plugins.
 * (LOOM_TEST_NO_BACKEND: the test picks its backends itself.)
 *
 * A plugin path without the plugin gives LOOM_ENOPLUGIN, not a crash, and
 * so do a file that is not a shared object and a plugin whose name is not
 * the one asked for; the real plugin loads from the build tree, once, and
 * runs a loop (the first of uv, event, ev and io_uring that is a plugin in
 * this build); and in plugin mode libloom.so itself has no link dependency
 * on any event library (readelf -d). */
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "loom_config.h"
#include "test.h"

static int fired;
static void on_timer(loom_timer_t *t, void *data)
{
    fired++;
    (void)t;
    (void)data;
}

static int builtin(const char *name)
{
    for (const char *const *n = loom_backend_builtin(); *n; n++)
        if (strcmp(*n, name) == 0)
            return 1;
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    CHECK(in && out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        CHECK(fwrite(buf, 1, n, out) == n);
    fclose(in);
    fclose(out);
}

/* libloom.so's NEEDED entries must not name an event library that is built
 * as a plugin. */
static void check_needed(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "readelf -d '%s/src/libloom.so' 2>/dev/null", LOOM_BINARY_DIR);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        if (strstr(line, "(NEEDED)") == NULL)
            continue;
        if (!LOOM_LINKED_LIBUV)
            CHECK(strstr(line, "libuv") == NULL);
        if (!LOOM_LINKED_LIBEVENT)
            CHECK(strstr(line, "libevent") == NULL);
        if (!LOOM_LINKED_LIBEV)
            CHECK(strstr(line, "libev.") == NULL);
        if (!LOOM_LINKED_IO_URING)
            CHECK(strstr(line, "liburing") == NULL);
    }
    pclose(p);
    if (lines == 0)
        fprintf(stderr, "note: readelf not available, link dependencies not checked\n");
}

/* The first optional backend of this build that is a plugin, or NULL. */
static const char *plugin_name(void)
{
    static const struct {
        const char *name;
        int built;
    } all[] = {{"uv", LOOM_WITH_LIBUV},
               {"event", LOOM_WITH_LIBEVENT},
               {"ev", LOOM_WITH_LIBEV},
               {"io_uring", LOOM_WITH_IO_URING}};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].built && !builtin(all[i].name))
            return all[i].name;
    return NULL;
}

/* Another plugin file of the build tree than `name`'s, or 0. */
static int other_plugin(const char *name, char *out, size_t size)
{
    char dirpath[256], mine[128];
    snprintf(dirpath, sizeof dirpath, "%s/src", LOOM_BINARY_DIR);
    snprintf(mine, sizeof mine, "libloom-backend-%s.so", name);
    DIR *d = opendir(dirpath);
    if (d == NULL)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (strncmp(e->d_name, "libloom-backend-", 16) == 0 && strcmp(e->d_name, mine) != 0) {
            snprintf(out, size, "%s/%s", dirpath, e->d_name);
            found = 1;
        }
    }
    closedir(d);
    return found;
}

int main(void)
{
    test_timeout(20);
    check_needed();
    const char *name = plugin_name();
    if (name == NULL)
        TEST_SKIP("no backend of this build is a plugin");

    char dir[] = "/tmp/loom-plugin-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    int err = 0;
    loom_loop_t *loop = NULL;

    /* 1. An empty plugin folder. */
    setenv("LOOM_PLUGIN_PATH", dir, 1);
    CHECK(loom_backend_find(name, &err) == NULL);
    CHECK_EQ(err, LOOM_ENOPLUGIN);
    CHECK_EQ(loom_loop_new(&loop, &(loom_loop_opts){.backend = name}), LOOM_ENOPLUGIN);
    CHECK(loop == NULL);
    setenv("LOOM_BACKEND", name, 1);
    CHECK_EQ(loom_loop_new(&loop, NULL), LOOM_ENOPLUGIN);
    unsetenv("LOOM_BACKEND");
    CHECK_STR(loom_err_name(LOOM_ENOPLUGIN), "ENOPLUGIN");
    CHECK(strlen(loom_strerror(LOOM_ENOPLUGIN)) > 0);

    /* 2. A file of the right name that is not a shared object. */
    char path[512];
    snprintf(path, sizeof path, "%s/libloom-backend-%s.so", dir, name);
    write_file(path, "not an ELF file\n");
    CHECK_EQ(loom_loop_new(&loop, &(loom_loop_opts){.backend = name}), LOOM_ENOPLUGIN);

    /* 3. A real plugin under another backend's name: refused. */
    char other[1024];
    if (other_plugin(name, other, sizeof other)) {
        unlink(path);
        copy_file(other, path);
        CHECK_EQ(loom_loop_new(&loop, &(loom_loop_opts){.backend = name}), LOOM_ENOPLUGIN);
    }
    unlink(path);
    rmdir(dir);

    /* 4. The build tree's plugin, after a folder that does not exist. */
    char search[600];
    snprintf(search, sizeof search, "/nonexistent/loom:%s/src", LOOM_BINARY_DIR);
    setenv("LOOM_PLUGIN_PATH", search, 1);
    const loom_backend_t *be = loom_backend_find(name, &err);
    CHECK(be != NULL);
    CHECK_EQ(err, 0);
    CHECK_STR(be->name, name);
    CHECK(loom_backend_find(name, NULL) == be); /* loaded once */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = name}));
    CHECK_OK(loom_delay(loop, 5, on_timer, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(fired, 1);
    test_loop_free_clean(loop);

    /* Once loaded, a plugin no longer depends on the search path. */
    setenv("LOOM_PLUGIN_PATH", "/nonexistent", 1);
    CHECK(loom_backend_find(name, NULL) == be);
    return 0;
}
