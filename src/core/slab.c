/* core/slab.c - fixed-size object allocator: 64 KiB chunks, a free list.
 * Objects are never returned to malloc one by one; the loop releases the
 * chunks when it is freed. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define LOOM__SLAB_CHUNK (64 * 1024)

void loom__slab_init(loom__slab *s, size_t size)
{
    memset(s, 0, sizeof *s);
    /* 8-byte alignment is all loom's objects need; 16 would cost up to 8
     * bytes per object (per idle connection). */
    s->size = (size + 7) & ~(size_t)7;
    if (s->size < sizeof(void *))
        s->size = sizeof(void *);
}

void *loom__slab_alloc(loom__slab *s)
{
    void *p = s->free;
    if (p) {
        s->free = *(void **)p;
        memset(p, 0, s->size);
        return p;
    }
    if (s->bump == NULL || (size_t)(s->end - s->bump) < s->size) {
        size_t csize = LOOM__SLAB_CHUNK;
        if (csize < s->size + 16)
            csize = s->size + 16;
        char *chunk = malloc(csize);
        if (chunk == NULL)
            return NULL;
        *(void **)chunk = s->chunks;
        s->chunks = chunk;
        s->bump = chunk + 16;
        s->end = chunk + csize;
    }
    p = s->bump;
    s->bump += s->size;
    memset(p, 0, s->size);
    return p;
}

void loom__slab_free(loom__slab *s, void *p)
{
    *(void **)p = s->free;
    s->free = p;
}

void loom__slab_destroy(loom__slab *s)
{
    void *c = s->chunks;
    while (c) {
        void *next = *(void **)c;
        free(c);
        c = next;
    }
    memset(s, 0, sizeof *s);
}
