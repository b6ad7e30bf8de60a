/* tests/test.h - the tiny harness every loom test uses.
 *
 * CHECK* print the failing expression with file and line and exit(1).
 * test_timeout() bounds a test's run time with alarm(); a test that hangs
 * fails instead of blocking the suite. test_loop_free_clean() checks that a
 * loop ends clean (no live objects) before freeing it.
 */
#ifndef LOOM_TEST_H
#define LOOM_TEST_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loom.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            fflush(stderr);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, check_a_, check_b_);                                         \
            fflush(stderr);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* CHECK_OK(expr): expr must return 0 (or >= 0); prints the loom error name. */
#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int check_r_ = (int)(expr);                                                                \
        if (check_r_ < 0) {                                                                        \
            fprintf(stderr, "%s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #expr,              \
                    loom_err_name(check_r_), loom_strerror(check_r_));                             \
            fflush(stderr);                                                                        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *check_sa_ = (a), *check_sb_ = (b);                                             \
        if (!check_sa_ || !check_sb_ || strcmp(check_sa_, check_sb_) != 0) {                       \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,     \
                    check_sa_ ? check_sa_ : "(null)", check_sb_ ? check_sb_ : "(null)");           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static inline void test_on_alarm_(int sig)
{
    (void)sig;
    static const char msg[] = "test timed out\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(2);
}

/* Fails the test if it runs longer than `seconds`. Under valgrind the limit
 * is multiplied by $LOOM_TEST_TIME_FACTOR (default 1). */
static inline void test_timeout(unsigned seconds)
{
    const char *f = getenv("LOOM_TEST_TIME_FACTOR");
    unsigned factor = f ? (unsigned)atoi(f) : 1;
    signal(SIGALRM, test_on_alarm_);
    alarm(seconds * (factor ? factor : 1));
}

/* Skips the test (exit 77) with a reason. */
#define TEST_SKIP(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "SKIP: " __VA_ARGS__);                                                     \
        fprintf(stderr, "\n");                                                                     \
        exit(77);                                                                                  \
    } while (0)

/* A loop on $LOOM_BACKEND (or the default). */
static inline loom_loop_t *test_loop_new(void)
{
    loom_loop_t *loop = NULL;
    CHECK_OK(loom_loop_new(&loop, NULL));
    return loop;
}

/* Asserts the loop has no live objects, then frees it. */
static inline void test_loop_free_clean(loom_loop_t *loop)
{
    size_t live = loom_loop_live(loop);
    if (live != 0) {
        fprintf(stderr, "loop not clean: %zu live objects\n", live);
        exit(1);
    }
    loom_loop_free(loop);
}

#endif
