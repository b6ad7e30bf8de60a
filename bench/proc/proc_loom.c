/* bench/proc/proc_loom.c - the child-process benchmarks on loom
 * (loom_spawn, a stdout pipe as a loom socket). */
#include "loom.h"

#define IMPL_NAME "loom"
#include "proc_main.h"

static loom_loop_t *loop;
static long left;
static long long got;

static void spawn_next(void);

static void on_exit_true(loom_process_t *p, int status, int sig, void *data)
{
    (void)data;
    if (status != 0 || sig != 0)
        fprintf(stderr, "loom: /bin/true ended %d/%d\n", status, sig);
    loom_process_close(p);
    spawn_next();
}

static void spawn_next(void)
{
    static char *argv[] = {"/bin/true", NULL};
    if (left-- <= 0)
        return;
    int r = loom_spawn(loop, &(loom_spawn_opts){.argv = argv, .on_exit = on_exit_true}, NULL);
    if (r != 0) {
        fprintf(stderr, "loom_spawn: %s\n", loom_strerror(r));
        exit(1);
    }
}

static int impl_spawn_true(long n)
{
    if (loom_loop_new(&loop, NULL) != 0)
        return -1;
    left = n;
    spawn_next();
    int r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r;
}

static void on_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    (void)b;
    (void)data;
    got += (long long)n;
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind != LOOM_EV_TCP_EOF)
        fprintf(stderr, "loom: %s\n", ev->msg ? ev->msg : loom_event_kind_name(ev->kind));
}

static void on_exit_writer(loom_process_t *p, int status, int sig, void *data)
{
    (void)data;
    if (status != 0 || sig != 0)
        fprintf(stderr, "loom: writer ended %d/%d\n", status, sig);
    loom_process_close(p);
}

static long long impl_pipe(long long bytes)
{
    if (loom_loop_new(&loop, NULL) != 0)
        return -1;
    char arg[32];
    snprintf(arg, sizeof arg, "%lld", bytes);
    char *argv[] = {(char *)self_path, "--writer", arg, NULL};
    loom_tcp_opts po = {.on_read = on_read, .on_event = on_event};
    int r = loom_spawn(loop,
                       &(loom_spawn_opts){.argv = argv,
                                          .stdio[1] = {.kind = LOOM_STDIO_PIPE, .pipe = &po},
                                          .on_exit = on_exit_writer},
                       NULL);
    if (r != 0) {
        fprintf(stderr, "loom_spawn: %s\n", loom_strerror(r));
        return -1;
    }
    loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return got;
}
