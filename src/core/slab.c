/* core/slab.c - fixed-size object allocator: 64 KiB chunks, a free list.
 * Objects are never returned to malloc one by one; the loop releases the
 * chunks when it is freed.
 *
 * Checked builds (ASan, or valgrind support built in and the process running
 * under valgrind) poison a freed object and keep it in a FIFO quarantine of
 * the last LOOM__SLAB_QUARANTINE objects before it can be reused, so a call
 * through a stale pointer (use after close) is reported by the sanitizer at
 * the faulty call instead of silently reaching the object's next owner.
 * Unused chunk space is poisoned too. In other builds all of this compiles
 * out: the checks below are constant false. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define LOOM__SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOOM__SLAB_ASAN 1
#endif
#endif

#if defined(LOOM__SLAB_ASAN)
#include <sanitizer/asan_interface.h>
#define LOOM__POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define LOOM__UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define LOOM__OPEN(p, n)     ASAN_UNPOISON_MEMORY_REGION((p), (n))
#define LOOM__CHECKED(s)     ((void)(s), 1)
#elif LOOM_WITH_VALGRIND
#include <valgrind/memcheck.h>
#define LOOM__POISON(p, n)   VALGRIND_MAKE_MEM_NOACCESS((p), (n))
#define LOOM__UNPOISON(p, n) VALGRIND_MAKE_MEM_UNDEFINED((p), (n))
#define LOOM__OPEN(p, n)     VALGRIND_MAKE_MEM_DEFINED((p), (n)) /* keeps a written link valid */
#define LOOM__CHECKED(s)     ((s)->checked)
#else
#define LOOM__POISON(p, n)   ((void)(p), (void)(n))
#define LOOM__UNPOISON(p, n) ((void)(p), (void)(n))
#define LOOM__OPEN(p, n)     ((void)(p), (void)(n))
#define LOOM__CHECKED(s)     ((void)(s), 0)
#endif

#define LOOM__SLAB_CHUNK      (64 * 1024)
#define LOOM__SLAB_QUARANTINE 1024 /* freed objects held back per slab (checked builds) */

void loom__slab_init(loom__slab *s, size_t size)
{
    memset(s, 0, sizeof *s);
    /* 8-byte alignment is all loom's objects need; 16 would cost up to 8
     * bytes per object (per idle connection). It is also ASan's shadow
     * granularity, so an object can be poisoned exactly. */
    s->size = (size + 7) & ~(size_t)7;
    if (s->size < sizeof(void *))
        s->size = sizeof(void *);
#if !defined(LOOM__SLAB_ASAN) && LOOM_WITH_VALGRIND
    s->checked = RUNNING_ON_VALGRIND != 0;
#endif
}

static size_t loom__slab_chunk_size(const loom__slab *s)
{
    return s->size + 16 > LOOM__SLAB_CHUNK ? s->size + 16 : LOOM__SLAB_CHUNK;
}

/* The free list's link lives in the first word of a freed object, which is
 * poisoned in checked builds: these two open it for the access only. */
static void *loom__slab_link(loom__slab *s, void *p)
{
    LOOM__OPEN(p, sizeof(void *));
    void *next = *(void **)p;
    if (LOOM__CHECKED(s))
        LOOM__POISON(p, sizeof(void *));
    return next;
}

static void loom__slab_push(loom__slab *s, void *p)
{
    LOOM__UNPOISON(p, sizeof(void *));
    *(void **)p = s->free;
    if (LOOM__CHECKED(s))
        LOOM__POISON(p, sizeof(void *));
    s->free = p;
}

void *loom__slab_alloc(loom__slab *s)
{
    void *p = s->free;
    if (p) {
        s->free = loom__slab_link(s, p);
        LOOM__UNPOISON(p, s->size);
        memset(p, 0, s->size);
        return p;
    }
    if (s->bump == NULL || (size_t)(s->end - s->bump) < s->size) {
        size_t csize = loom__slab_chunk_size(s);
        char *chunk = malloc(csize);
        if (chunk == NULL)
            return NULL;
        *(void **)chunk = s->chunks;
        s->chunks = chunk;
        s->bump = chunk + 16;
        s->end = chunk + csize;
        if (LOOM__CHECKED(s))
            LOOM__POISON(s->bump, (size_t)(s->end - s->bump));
    }
    p = s->bump;
    s->bump += s->size;
    LOOM__UNPOISON(p, s->size);
    memset(p, 0, s->size);
    return p;
}

void loom__slab_free(loom__slab *s, void *p)
{
    if (!LOOM__CHECKED(s)) {
        loom__slab_push(s, p);
        return;
    }
    LOOM__POISON(p, s->size);
    if (s->quarantine == NULL)
        s->quarantine = malloc(LOOM__SLAB_QUARANTINE * sizeof(void *));
    if (s->quarantine == NULL) {
        loom__slab_push(s, p); /* out of memory: no quarantine, still poisoned */
        return;
    }
    unsigned slot = (s->q_head + s->q_len) % LOOM__SLAB_QUARANTINE;
    if (s->q_len == LOOM__SLAB_QUARANTINE) {
        /* Full: the oldest object has waited long enough; it becomes
         * reusable (still poisoned until allocated again). */
        loom__slab_push(s, s->quarantine[s->q_head]);
        s->q_head = (s->q_head + 1) % LOOM__SLAB_QUARANTINE;
        s->q_len--;
    }
    s->quarantine[slot] = p;
    s->q_len++;
}

void loom__slab_foreach(loom__slab *s, void (*fn)(void *obj, void *arg), void *arg)
{
    size_t csize = loom__slab_chunk_size(s);
    for (char *chunk = s->chunks; chunk; chunk = *(char **)chunk) {
        char *end = chunk == s->chunks ? s->bump : chunk + csize;
        for (char *p = chunk + 16; p + s->size <= end; p += s->size) {
#if defined(LOOM__SLAB_ASAN)
            if (__asan_address_is_poisoned(p))
                continue;
#elif LOOM_WITH_VALGRIND
            /* Asking for the validity bits of a poisoned (no-access) byte
             * answers 3 without reporting an error. */
            char vbits;
            if (s->checked && VALGRIND_GET_VBITS(p, &vbits, 1) == 3)
                continue;
#endif
            fn(p, arg);
        }
    }
}

void loom__slab_destroy(loom__slab *s)
{
    size_t csize = loom__slab_chunk_size(s);
    void *c = s->chunks;
    while (c) {
        void *next = *(void **)c;
        /* Give malloc back its memory as it lent it. */
        LOOM__UNPOISON(c, csize);
        free(c);
        c = next;
    }
    free(s->quarantine);
    memset(s, 0, sizeof *s);
}
