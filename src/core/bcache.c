/* core/bcache.c - a loop's cache of small freed malloc blocks.
 *
 * HTTP/2 makes and frees about eight blocks of 130 to 260 bytes per
 * request (nghttp2's stream, its outbound items and copies, loom's stream
 * and field records), ten or more of each size live at once per
 * connection. glibc's per-thread cache keeps only 7 blocks per size, so
 * most of these went through its arenas (locked, since loom has worker
 * threads): about a tenth of the server's CPU.
 *
 * This cache keeps freed blocks per size on the loop, without locks: a
 * block is filed under its real size, malloc_usable_size() + 8 rounded to
 * a multiple of 16 - exactly glibc's chunk size - and a request for n bytes
 * takes one from the size glibc would give it. A block in class k has
 * 16k - 8 usable bytes by construction, whatever the allocator, so a
 * block is never too small; under another allocator the cache is merely
 * less effective. Every block is a malloc block: memory from the cache may
 * be given to free(), and any malloc block to loom__bc_free().
 *
 * Bounded: at most LOOM__BC_MAX bytes are cached per loop; beyond that a
 * freed block goes to free(). The cache is emptied when the loop is freed.
 *
 * Checked builds (ASan; valgrind when built with LOOM_VALGRIND and running
 * under it) bypass the cache, so that use after free is still reported.
 *
 * Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#if defined(__GLIBC__)
#include <malloc.h>
#define LOOM__BC_USABLE(p) malloc_usable_size(p)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define LOOM__BC_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOM__BC_ASAN 1
#endif
#endif

#if !defined(LOOM__BC_ASAN) && LOOM_WITH_VALGRIND
#include <valgrind/valgrind.h>
#endif

/* The class of a request for n bytes: glibc's chunk size / 16. */
static size_t loom__bc_class(size_t n)
{
    size_t c = (n + 8 + 15) & ~(size_t)15;
    return (c < 32 ? 32 : c) / 16;
}

#if defined(LOOM__BC_USABLE)
/* glibc's size of the chunk of p, read from the word before it (the
 * chunk's size field, its three flag bits masked), or 0 for a mapped chunk
 * (not a block of the cache's sizes). Used only once the probe below has
 * seen malloc_usable_size() agree with it: it reads what the call reads,
 * without the call's look at the next chunk (a cache miss as often as
 * not). */
static inline size_t loom__bc_chunk(const void *p)
{
    size_t sz;
    /* (Through an integer: the word is malloc's, before the block.) */
    uintptr_t at = (uintptr_t)p - sizeof sz;
    memcpy(&sz, (const void *)at, sizeof sz);
    return (sz & 2) ? 0 : sz & ~(size_t)7;
}

/* Does malloc(n) give at least its class's usable bytes (16k - 8), as
 * glibc's chunks do, with the chunk's size in the word before the block?
 * Another allocator in the process (a preloaded jemalloc or tcmalloc,
 * valgrind's) may give less or keep its sizes elsewhere: then sizes are
 * asked of malloc_usable_size(). The sizes cover each residue that a
 * 16-byte-granular allocator would fail. */
static bool loom__bc_probe(void)
{
    static const size_t sizes[] = {1, 8, 9, 15, 24, 25, 100, 105, 111, 200, 201, 521, 1000, 1001};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = malloc(sizes[i]);
        if (p == NULL)
            return false;
        size_t u = LOOM__BC_USABLE(p);
        bool ok = u >= loom__bc_class(sizes[i]) * 16 - 8 && loom__bc_chunk(p) == u + 8;
        free(p);
        if (!ok)
            return false;
    }
    return true;
}
#endif

void loom__bc_init(loom__bcache *bc)
{
    memset(bc, 0, sizeof *bc);
#if defined(LOOM__BC_ASAN) || !defined(LOOM__BC_USABLE)
    bc->off = true;
#elif LOOM_WITH_VALGRIND
    bc->off = RUNNING_ON_VALGRIND != 0;
#endif
#if defined(LOOM__BC_USABLE)
    bc->exact = !bc->off && loom__bc_probe();
#endif
}

void *loom__bc_alloc(loom__bcache *bc, size_t n)
{
    size_t k = loom__bc_class(n);
    if (k < LOOM__BC_CLASSES && bc->head[k] != NULL) {
        void *p = bc->head[k];
        bc->head[k] = *(void **)p;
        bc->bytes -= k * 16;
        return p;
    }
    return malloc(n);
}

void *loom__bc_calloc(loom__bcache *bc, size_t n)
{
    void *p = loom__bc_alloc(bc, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

void loom__bc_free(loom__bcache *bc, void *p)
{
    if (p == NULL)
        return;
#if defined(LOOM__BC_USABLE)
    if (!bc->off) {
        size_t c = bc->exact ? loom__bc_chunk(p) : LOOM__BC_USABLE(p) + 8;
        size_t k = c / 16;
        if ((c & 15) == 0 && k >= 2 && k < LOOM__BC_CLASSES && bc->bytes + c <= LOOM__BC_MAX) {
            *(void **)p = bc->head[k];
            bc->head[k] = p;
            bc->bytes += c;
            return;
        }
    }
#endif
    free(p);
}

/* A block allocated with n bytes (through loom__bc_alloc, or malloc) is a
 * chunk of class loom__bc_class(n) under glibc, or larger (glibc does not
 * split off a remainder too small to be a chunk): it has at least that
 * class's usable bytes, so it is filed there without asking malloc. Under
 * an allocator that gives less (bc->exact false: see loom__bc_probe) malloc
 * is asked, as by loom__bc_free(). */
void loom__bc_free_sized(loom__bcache *bc, void *p, size_t n)
{
    if (p == NULL)
        return;
    if (!bc->exact) {
        loom__bc_free(bc, p);
        return;
    }
    size_t k = loom__bc_class(n);
    if (k < LOOM__BC_CLASSES && bc->bytes + k * 16 <= LOOM__BC_MAX) {
        *(void **)p = bc->head[k];
        bc->head[k] = p;
        bc->bytes += k * 16;
        return;
    }
    free(p);
}

void *loom__bc_realloc_sized(loom__bcache *bc, void *p, size_t old, size_t n)
{
    if (p == NULL)
        return loom__bc_alloc(bc, n);
    if (!bc->exact || n == 0)
        return loom__bc_realloc(bc, p, n);
    if (loom__bc_class(n) <= loom__bc_class(old))
        return p; /* the chunk has room (above) */
    void *q = loom__bc_alloc(bc, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    loom__bc_free_sized(bc, p, old);
    return q;
}

void *loom__bc_realloc(loom__bcache *bc, void *p, size_t n)
{
    if (p == NULL)
        return loom__bc_alloc(bc, n);
#if defined(LOOM__BC_USABLE)
    if (!bc->off && n != 0) {
        size_t c = bc->exact ? loom__bc_chunk(p) : LOOM__BC_USABLE(p) + 8;
        if (c >= 32 && c - 8 >= n)
            return p;
    }
#endif
    return realloc(p, n);
}

void loom__bc_destroy(loom__bcache *bc)
{
    for (size_t k = 0; k < LOOM__BC_CLASSES; k++) {
        for (void *p = bc->head[k], *next; p != NULL; p = next) {
            next = *(void **)p;
            free(p);
        }
        bc->head[k] = NULL;
    }
    bc->bytes = 0;
}
