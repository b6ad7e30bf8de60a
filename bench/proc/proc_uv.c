/* bench/proc/proc_uv.c - the child-process benchmarks on libuv (uv_spawn,
 * UV_CREATE_PIPE for stdout: a socketpair, as loom's). */
#include <uv.h>

#define IMPL_NAME "libuv"
#include "proc_main.h"

static uv_loop_t *loop;
static long left;
static long long got;
static uv_process_t proc;
static uv_pipe_t out_pipe;

static void spawn_next(void);

static void on_close_true(uv_handle_t *h)
{
    (void)h;
    spawn_next();
}

static void on_exit_true(uv_process_t *p, int64_t status, int sig)
{
    if (status != 0 || sig != 0)
        fprintf(stderr, "libuv: /bin/true ended %d/%d\n", (int)status, sig);
    uv_close((uv_handle_t *)p, on_close_true);
}

static void spawn_next(void)
{
    static char *argv[] = {"/bin/true", NULL};
    if (left-- <= 0)
        return;
    uv_process_options_t o = {.file = argv[0], .args = argv, .exit_cb = on_exit_true};
    int r = uv_spawn(loop, &proc, &o);
    if (r != 0) {
        fprintf(stderr, "uv_spawn: %s\n", uv_strerror(r));
        exit(1);
    }
}

static int impl_spawn_true(long n)
{
    loop = uv_default_loop();
    left = n;
    spawn_next();
    return uv_run(loop, UV_RUN_DEFAULT);
}

static char rbuf[65536];

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)h;
    (void)hint;
    *b = uv_buf_init(rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n > 0)
        got += n;
    else if (n < 0)
        uv_close((uv_handle_t *)s, NULL);
}

static void on_exit_writer(uv_process_t *p, int64_t status, int sig)
{
    if (status != 0 || sig != 0)
        fprintf(stderr, "libuv: writer ended %d/%d\n", (int)status, sig);
    uv_close((uv_handle_t *)p, NULL);
}

static long long impl_pipe(long long bytes)
{
    loop = uv_default_loop();
    char arg[32];
    snprintf(arg, sizeof arg, "%lld", bytes);
    char *argv[] = {(char *)self_path, "--writer", arg, NULL};
    uv_pipe_init(loop, &out_pipe, 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&out_pipe},
        {.flags = UV_INHERIT_FD, .data.fd = 2}};
    uv_process_options_t o = {
        .file = argv[0], .args = argv, .exit_cb = on_exit_writer, .stdio = stdio, .stdio_count = 3};
    int r = uv_spawn(loop, &proc, &o);
    if (r != 0) {
        fprintf(stderr, "uv_spawn: %s\n", uv_strerror(r));
        return -1;
    }
    uv_read_start((uv_stream_t *)&out_pipe, on_alloc, on_read);
    uv_run(loop, UV_RUN_DEFAULT);
    return got;
}
