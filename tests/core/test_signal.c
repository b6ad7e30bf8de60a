/* tests/core/test_signal.c - signal handlers: delivery, several loops and
 * threads, exact restoration of the previous disposition, clear, liveness,
 * errors, loom_raise routing, and fork. Uses SIGUSR1, SIGUSR2, SIGHUP and
 * SIGWINCH; SIGALRM belongs to test_timeout(). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

typedef struct {
    int calls;
    int last_signo;
    int free_after; /* free the handler on this call (0: never) */
    loom_loop_t *loop;
    pthread_t thread;
} counter_t;

static void on_signal(loom_signal_t *sig, int signo, void *data)
{
    counter_t *c = data;
    c->calls++;
    c->last_signo = signo;
    CHECK(pthread_equal(pthread_self(), c->thread));
    if (c->free_after && c->calls == c->free_after)
        loom_signal_free(sig);
}

/* Runs the loop one non-blocking step at a time until *calls reaches n (the
 * signal has already been written to the pipe; this bounds the wait). */
static void run_until(loom_loop_t *loop, const int *calls, int n)
{
    for (int i = 0; i < 200 && *calls < n; i++) {
        loom_run(loop, LOOM_RUN_NOWAIT);
        if (*calls < n) {
            struct timespec ts = {0, 5 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_EQ(*calls, n);
}

static counter_t counter(loom_loop_t *loop)
{
    counter_t c = {0};
    c.loop = loop;
    c.thread = pthread_self();
    return c;
}

/* raise() and kill(getpid()) both reach the callback, on the loop thread. */
static void test_basic(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    loom_signal_t *sig = NULL;
    loom_stats_t st;

    CHECK_OK(loom_signal_handler(loop, SIGUSR1, on_signal, &c, &sig));
    CHECK(sig != NULL);
    CHECK_EQ(loom_loop_live(loop), 1);
    loom_stats(loop, &st);
    CHECK_EQ(st.signals, 1);

    CHECK_EQ(raise(SIGUSR1), 0);
    run_until(loop, &c.calls, 1);
    CHECK_EQ(c.last_signo, SIGUSR1);

    CHECK_EQ(kill(getpid(), SIGUSR1), 0);
    run_until(loop, &c.calls, 2);

    /* A second handler for the same signal on the same loop is refused. */
    CHECK_EQ(loom_signal_handler(loop, SIGUSR1, on_signal, &c, NULL), LOOM_EEXIST);
    /* Bad and uncatchable signals. */
    CHECK_EQ(loom_signal_handler(loop, 0, on_signal, &c, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_signal_handler(loop, -3, on_signal, &c, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_signal_handler(loop, NSIG, on_signal, &c, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_signal_handler(loop, SIGKILL, on_signal, &c, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_signal_handler(loop, SIGSTOP, on_signal, &c, NULL), LOOM_EINVAL);

    loom_signal_free(sig);
    loom_signal_free(sig); /* harmless twice before the loop frees it */
    loom_stats(loop, &st);
    CHECK_EQ(st.signals, 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* Two loops on one thread, each with a handler for the same signal. */
static void test_two_loops(void)
{
    loom_loop_t *a = test_loop_new(), *b = test_loop_new();
    counter_t ca = counter(a), cb = counter(b);
    loom_signal_t *sa, *sb;

    CHECK_OK(loom_signal_handler(a, SIGUSR2, on_signal, &ca, &sa));
    CHECK_OK(loom_signal_handler(b, SIGUSR2, on_signal, &cb, &sb));
    CHECK_EQ(raise(SIGUSR2), 0);
    run_until(a, &ca.calls, 1);
    run_until(b, &cb.calls, 1);

    /* Freeing one leaves the other working. */
    loom_signal_free(sa);
    CHECK_EQ(raise(SIGUSR2), 0);
    run_until(b, &cb.calls, 2);
    CHECK_EQ(loom_run(a, LOOM_RUN_NOWAIT), 0);
    CHECK_EQ(ca.calls, 1);

    loom_signal_free(sb);
    CHECK_EQ(loom_run(a, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(loom_run(b, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(a);
    test_loop_free_clean(b);
}

/* Two loops on two threads: both get one kill(); each frees its handler from
 * its callback, which ends its loom_run(). */
typedef struct {
    counter_t c;
    atomic_int ready;
    int result;
} thread_arg_t;

static void *loop_thread(void *p)
{
    thread_arg_t *t = p;
    loom_loop_t *loop = test_loop_new();
    t->c = counter(loop);
    t->c.free_after = 1;
    CHECK_OK(loom_signal_handler(loop, SIGHUP, on_signal, &t->c, NULL));
    atomic_store(&t->ready, 1);
    t->result = loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
    return NULL;
}

static void test_two_threads(void)
{
    thread_arg_t t[2];
    pthread_t th[2];

    memset(t, 0, sizeof t);
    for (int i = 0; i < 2; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, loop_thread, &t[i]), 0);
    while (!atomic_load(&t[0].ready) || !atomic_load(&t[1].ready))
        sched_yield();
    CHECK_EQ(kill(getpid(), SIGHUP), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(t[i].result, 0);
        CHECK_EQ(t[i].c.calls, 1);
        CHECK_EQ(t[i].c.last_signo, SIGHUP);
    }
    /* The last handler went away: SIGHUP is back to its default. */
    struct sigaction now;
    CHECK_EQ(sigaction(SIGHUP, NULL, &now), 0);
    CHECK(now.sa_handler == SIG_DFL);
}

/* --- Restoring the previous disposition exactly --------------------------- */

static volatile sig_atomic_t g_custom_hits;
static void custom_handler(int signo)
{
    (void)signo;
    g_custom_hits++;
}
static void custom_action(int signo, siginfo_t *si, void *uc)
{
    (void)signo, (void)si, (void)uc;
    g_custom_hits++;
}

static void check_same_action(const struct sigaction *a, const struct sigaction *b)
{
    CHECK_EQ(a->sa_flags, b->sa_flags);
    if (a->sa_flags & SA_SIGINFO)
        CHECK(a->sa_sigaction == b->sa_sigaction);
    else
        CHECK(a->sa_handler == b->sa_handler);
    for (int s = 1; s < NSIG; s++)
        CHECK_EQ(sigismember(&a->sa_mask, s), sigismember(&b->sa_mask, s));
}

/* Installs `set` for signo, lets one or two loops handle it, frees them and
 * checks that what the kernel reports afterwards equals what it reported
 * before. */
static void check_restore(int signo, const struct sigaction *set)
{
    struct sigaction before, during, after;
    loom_loop_t *a = test_loop_new(), *b = test_loop_new();
    counter_t ca = counter(a), cb = counter(b);
    loom_signal_t *sa, *sb;

    CHECK_EQ(sigaction(signo, set, NULL), 0);
    CHECK_EQ(sigaction(signo, NULL, &before), 0);

    CHECK_OK(loom_signal_handler(a, signo, on_signal, &ca, &sa));
    CHECK_OK(loom_signal_handler(b, signo, on_signal, &cb, &sb));
    CHECK_EQ(sigaction(signo, NULL, &during), 0);
    CHECK(!(during.sa_flags & SA_SIGINFO));
    CHECK(during.sa_handler != before.sa_handler);
    CHECK(during.sa_flags & SA_RESTART);
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP && s != 32 && s != 33)
            CHECK(sigismember(&during.sa_mask, s));

    /* Not the last handler: still loom's. */
    loom_signal_free(sa);
    CHECK_EQ(sigaction(signo, NULL, &after), 0);
    CHECK(after.sa_handler == during.sa_handler);

    loom_signal_free(sb);
    CHECK_EQ(sigaction(signo, NULL, &after), 0);
    check_same_action(&before, &after);

    CHECK_EQ(loom_run(a, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(loom_run(b, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(a);
    test_loop_free_clean(b);
}

static void test_restore(void)
{
    struct sigaction sa;

    /* A plain handler with particular flags and mask. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = custom_handler;
    sa.sa_flags = SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGRTMIN + 3);
    check_restore(SIGUSR1, &sa);
    /* It is really back: it runs. */
    g_custom_hits = 0;
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(g_custom_hits, 1);

    /* An SA_SIGINFO handler with SA_RESTART and another mask. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = custom_action;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaddset(&sa.sa_mask, SIGPIPE);
    check_restore(SIGUSR2, &sa);

    /* SIG_IGN. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    check_restore(SIGUSR1, &sa);
    CHECK_EQ(raise(SIGUSR1), 0); /* ignored, as before */

    /* SIG_DFL. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    check_restore(SIGUSR1, &sa);
    check_restore(SIGWINCH, &sa);

    /* Leave SIGUSR1 and SIGUSR2 as the process had them. */
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    signal(SIGWINCH, SIG_DFL);
}

/* --- Clear, liveness and routing ------------------------------------------ */

static void test_clear(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    const int signos[] = {SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH};
    struct sigaction before[4], after;
    loom_stats_t st;

    for (int i = 0; i < 4; i++) {
        CHECK_EQ(sigaction(signos[i], NULL, &before[i]), 0);
        CHECK_OK(loom_signal_handler(loop, signos[i], on_signal, &c, NULL));
    }
    CHECK_EQ(loom_loop_live(loop), 4);
    loom_stats(loop, &st);
    CHECK_EQ(st.signals, 4);

    loom_signal_clear(loop);
    loom_stats(loop, &st);
    CHECK_EQ(st.signals, 0);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(sigaction(signos[i], NULL, &after), 0);
        check_same_action(&before[i], &after);
    }
    loom_signal_clear(loop); /* harmless when empty */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* The signal can be handled again after a clear. */
    c.free_after = 1;
    CHECK_OK(loom_signal_handler(loop, SIGUSR1, on_signal, &c, NULL));
    CHECK_EQ(raise(SIGUSR1), 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.calls, 1);
    test_loop_free_clean(loop);
}

static void raise_later(loom_timer_t *t, void *data)
{
    (void)t;
    CHECK_EQ(kill(getpid(), *(int *)data), 0);
}

static void nothing(loom_timer_t *t, void *data)
{
    (void)t, (void)data;
}

static int g_app_events;
static void on_default_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK_EQ(ev->kind, LOOM_EV_APP_ERROR);
    CHECK_EQ(ev->code, LOOM_EAPP);
    CHECK_STR(ev->msg, "from a signal");
    g_app_events++;
}

static void on_signal_raise(loom_signal_t *sig, int signo, void *data)
{
    counter_t *c = data;
    c->calls++;
    CHECK_OK(loom_raise(c->loop, LOOM_EAPP, "from a signal", NULL));
    loom_signal_free(sig);
    (void)signo;
}

/* A live handler keeps loom_run(DEFAULT) going until its callback frees it;
 * loom_raise() inside the callback goes to the loop's default handler. */
static void test_keeps_alive(void)
{
    loom_loop_t *loop;
    int signo = SIGUSR2;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = on_default_event}));
    counter_t c = counter(loop);

    CHECK_OK(loom_signal_handler(loop, signo, on_signal_raise, &c, NULL));
    CHECK_OK(loom_delay(loop, 50, raise_later, &signo, NULL));
    uint64_t t0 = loom_now(loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.calls, 1);
    CHECK_EQ(g_app_events, 1);
    CHECK(loom_now(loop) - t0 >= 45);
    test_loop_free_clean(loop);
}

/* An unref'd handler does not keep the loop alive, but still fires. */
static void test_unref(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    loom_signal_t *sig;

    CHECK_OK(loom_signal_handler(loop, SIGUSR1, on_signal, &c, &sig));
    loom_signal_unref(sig);
    loom_signal_unref(sig); /* idempotent */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    /* While something else keeps the loop running, it fires. */
    int signo = SIGUSR1;
    CHECK_OK(loom_delay(loop, 10, raise_later, &signo, NULL));
    CHECK_OK(loom_delay(loop, 60, nothing, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.calls, 1);

    loom_signal_ref(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    loom_signal_unref(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 0);

    loom_signal_free(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* The loop is freed with handlers still installed: they are freed and the
 * dispositions restored. */
static void test_loop_free_restores(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    struct sigaction sa, before, after;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    CHECK_EQ(sigaction(SIGWINCH, &sa, NULL), 0);
    CHECK_EQ(sigaction(SIGWINCH, NULL, &before), 0);
    CHECK_OK(loom_signal_handler(loop, SIGWINCH, on_signal, &c, NULL));
    CHECK_OK(loom_signal_handler(loop, SIGUSR2, on_signal, &c, NULL));
    loom_loop_free(loop);
    CHECK_EQ(sigaction(SIGWINCH, NULL, &after), 0);
    check_same_action(&before, &after);
    CHECK_EQ(sigaction(SIGUSR2, NULL, &after), 0);
    CHECK(after.sa_handler == SIG_DFL);
    signal(SIGWINCH, SIG_DFL);
}

/* --- fork ------------------------------------------------------------------ */

static void test_fork(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    loom_signal_t *sig;

    CHECK_OK(loom_signal_handler(loop, SIGUSR1, on_signal, &c, &sig));
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);

    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* Child: its own pipe; the signal reaches its loop and not the
         * parent's. Exit codes say what failed. */
        alarm(10);
        if (loom_loop_fork(loop) != 0)
            _exit(10);
        c.thread = pthread_self();
        c.free_after = 1;
        if (raise(SIGUSR1) != 0)
            _exit(11);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0)
            _exit(12);
        if (c.calls != 1)
            _exit(13);
        loom_loop_free(loop);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);

    /* The child's signal did not wake the parent's loop... */
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    CHECK_EQ(c.calls, 0);
    /* ...which still works. */
    CHECK_EQ(raise(SIGUSR1), 0);
    run_until(loop, &c.calls, 1);
    loom_signal_free(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* A signal that arrives in the child between fork() and loom_loop_fork() is
 * not lost: the handler only records it (the inherited pipe is the
 * parent's), and loom_loop_fork() makes the loop see it. */
static void test_fork_early_signal(void)
{
    loom_loop_t *loop = test_loop_new();
    counter_t c = counter(loop);
    loom_signal_t *sig;

    CHECK_OK(loom_signal_handler(loop, SIGUSR2, on_signal, &c, &sig));
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        c.thread = pthread_self();
        c.free_after = 1;
        if (raise(SIGUSR2) != 0)
            _exit(11);
        if (loom_loop_fork(loop) != 0)
            _exit(10);
        for (int i = 0; i < 100 && c.calls == 0; i++) {
            loom_run(loop, LOOM_RUN_NOWAIT);
            if (c.calls == 0) {
                struct timespec ts = {0, 5 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (c.calls != 1)
            _exit(13);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0)
            _exit(12);
        loom_loop_free(loop);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    CHECK_EQ(c.calls, 0);
    loom_signal_free(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    /* The checks of restored dispositions expect the defaults: a run
     * started under nohup (or by a shell that ignores these) inherits
     * SIG_IGN, which loom rightly restores. */
    signal(SIGHUP, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    signal(SIGWINCH, SIG_DFL);
    test_basic();
    test_two_loops();
    test_two_threads();
    test_restore();
    test_clear();
    test_keeps_alive();
    test_unref();
    test_loop_free_restores();
    test_fork();
    test_fork_early_signal();
    return 0;
}
