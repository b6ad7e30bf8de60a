/* tests/tls/tls_test_util.h - helpers of the TLS tests: certificates made
 * fresh per process (mkcerts.sh, with the openssl CLI, into a temporary
 * directory removed at exit), contexts from them, and running the loop. */
#ifndef LOOM_TLS_TEST_UTIL_H
#define LOOM_TLS_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

static char tls_dir_[64];

static void tls_certs_rm_(void)
{
    if (tls_dir_[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir_);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tls_dir_);
    }
}

/* Makes the certificates (once per process); returns their directory. */
static inline const char *tls_certs(void)
{
    if (tls_dir_[0])
        return tls_dir_;
    snprintf(tls_dir_, sizeof tls_dir_, "/tmp/loom-tls-XXXXXX");
    CHECK(mkdtemp(tls_dir_) != NULL);
    atexit(tls_certs_rm_);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tls/mkcerts.sh' '%s'", LOOM_SOURCE_DIR, tls_dir_);
    CHECK_EQ(system(cmd), 0);
    return tls_dir_;
}

/* The path of certificate file `name` ("server.pem"): a static buffer of
 * four, used in turn. */
static inline const char *tls_path(const char *name)
{
    static char buf[4][160];
    static int i;
    char *p = buf[i++ & 3];
    snprintf(p, 160, "%s/%s", tls_certs(), name);
    return p;
}

/* A server context with the certificate `name` ("server", "expired"...). */
static inline loom_tls_ctx_t *tls_server_ctx(const char *name, const loom_tls_opts *more)
{
    loom_tls_opts o = more ? *more : (loom_tls_opts){0};
    char cert[32], key[32];
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    o.server = true;
    o.cert.cert_file = tls_path(cert);
    o.cert.key_file = tls_path(key);
    loom_tls_ctx_t *ctx;
    char err[256];
    int r = loom_tls_ctx_new(&o, &ctx, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "server context: %s\n", err);
    CHECK_OK(r);
    return ctx;
}

/* A client context trusting the test CA. */
static inline loom_tls_ctx_t *tls_client_ctx(const loom_tls_opts *more)
{
    loom_tls_opts o = more ? *more : (loom_tls_opts){0};
    if (o.ca_file == NULL && !o.insecure)
        o.ca_file = tls_path("ca.pem");
    loom_tls_ctx_t *ctx;
    char err[256];
    int r = loom_tls_ctx_new(&o, &ctx, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "client context: %s\n", err);
    CHECK_OK(r);
    return ctx;
}

static inline uint64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tls_tick_(loom_timer_t *t, void *d)
{
    (void)t, (void)d;
}

/* Runs the loop until *flag or `ms` pass (a 5 ms tick bounds each turn).
 * Returns whether the flag was set. */
static inline bool tls_run_until(loom_loop_t *loop, volatile int *flag, unsigned ms)
{
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, tls_tick_, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = tls_now_ms() + ms;
    while (!*flag && tls_now_ms() < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(tick);
    return *flag != 0;
}

#endif
