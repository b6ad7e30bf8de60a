/* The loop's block cache (core/bcache.c) against a model: random sizes made
 * with loom__bc_alloc, _calloc, _realloc and _realloc_sized, freed by
 * loom__bc_free, by loom__bc_free_sized (with the size the block was made
 * with) or by plain free() (and malloc blocks given to loom__bc_free), each block
 * filled with its own pattern and checked before it goes. A block is never
 * smaller than asked, never handed out twice, a cached block of the right
 * size is reused, and the cache stays within its bound. Checked builds
 * (ASan, valgrind) bypass the cache: the same model runs, and the tools
 * see every block. LOOM_TEST_NO_BACKEND: it drives the cache directly. */
#include <malloc.h>

#include "core/internal.h"
#include "test.h"

#define N 512

static unsigned char *blk[N];
static size_t len[N];

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t rand_size(void)
{
    uint64_t r = next_rand() % 100;
    return r < 70 ? 1 + next_rand() % 300 : r < 95 ? next_rand() % 1100 : next_rand() % 9000;
}

static void fill(size_t i)
{
    for (size_t j = 0; j < len[i]; j++)
        blk[i][j] = (unsigned char)(i * 31 + j);
}

static void check(size_t i, size_t upto)
{
    for (size_t j = 0; j < upto && j < len[i]; j++)
        CHECK_EQ(blk[i][j], (unsigned char)(i * 31 + j));
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom__bcache *bc = &loop->bc;

    /* Reuse: a freed block comes back for a request of its size. */
    void *a = loom__bc_alloc(bc, 200);
    CHECK(a != NULL);
    CHECK(malloc_usable_size(a) >= 200);
    loom__bc_free(bc, a);
    void *b = loom__bc_alloc(bc, 190);
    CHECK(b != NULL);
    CHECK(malloc_usable_size(b) >= 190);
    if (!bc->off)
        CHECK(a == b); /* same 16-byte size class */
    free(b);           /* a cache block is a malloc block */
    CHECK_EQ(bc->bytes, (size_t)0);

    /* calloc zeroes a reused block. */
    unsigned char *z = loom__bc_alloc(bc, 100);
    memset(z, 0xab, 100);
    loom__bc_free(bc, z);
    z = loom__bc_calloc(bc, 100);
    for (size_t j = 0; j < 100; j++)
        CHECK_EQ(z[j], 0);
    loom__bc_free(bc, z);

    /* A malloc block is accepted by the cache. */
    loom__bc_free(bc, malloc(64));
    loom__bc_free(bc, NULL);

    for (long iter = 0; iter < 400000; iter++) {
        size_t i = next_rand() % N;
        unsigned op = (unsigned)(next_rand() % 10);
        if (blk[i] == NULL) {
            len[i] = rand_size();
            blk[i] = op < 5   ? loom__bc_alloc(bc, len[i])
                     : op < 8 ? loom__bc_calloc(bc, len[i])
                              : malloc(len[i] ? len[i] : 1);
            CHECK(blk[i] != NULL);
            if (op >= 5 && op < 8)
                for (size_t j = 0; j < len[i]; j++)
                    CHECK_EQ(blk[i][j], 0);
            CHECK(malloc_usable_size(blk[i]) >= len[i]);
            fill(i);
        } else if (op < 3) {
            /* Grow or shrink: the common prefix survives. */
            size_t old = len[i], n = rand_size() + 1;
            unsigned char *p = (next_rand() & 1) ? loom__bc_realloc(bc, blk[i], n)
                                                 : loom__bc_realloc_sized(bc, blk[i], old, n);
            CHECK(p != NULL);
            CHECK(malloc_usable_size(p) >= n);
            blk[i] = p;
            len[i] = old < n ? old : n;
            check(i, len[i]);
            len[i] = n;
            fill(i);
        } else {
            check(i, len[i]);
            if (op < 6)
                loom__bc_free(bc, blk[i]);
            else if (op < 8)
                loom__bc_free_sized(bc, blk[i], len[i]); /* the size it was made with */
            else
                free(blk[i]);
            blk[i] = NULL;
        }
        CHECK(bc->bytes <= LOOM__BC_MAX);
        if (bc->off)
            CHECK_EQ(bc->bytes, (size_t)0);
    }
    for (size_t i = 0; i < N; i++) {
        if (blk[i] != NULL)
            check(i, len[i]);
        loom__bc_free(bc, blk[i]);
    }
    /* Whatever is cached now is released with the loop (ASan and valgrind
     * check that nothing leaks). */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
