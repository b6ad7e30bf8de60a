/* core/bytes.c - the one buffer for bytes that must outlive a read: a
 * partial HTTP head, input that arrived behind a request in flight, a
 * client's unprocessed response bytes, a backend's or a transport's bytes
 * held for a paused reader. See loom__bytes in core/internal.h. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

int loom__bytes_reserve(loom__bytes **bp, size_t more)
{
    loom__bytes *b = *bp;
    if (b != NULL && b->cap - b->len >= more)
        return 0;
    if (b != NULL && b->off > 0) {
        /* Move the unconsumed bytes to the front first: room may suffice. */
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
        if (b->cap - b->len >= more)
            return 0;
    }
    size_t len = b ? b->len : 0;
    if (more > SIZE_MAX / 2 - sizeof *b - len)
        return LOOM_ENOMEM;
    size_t cap = b && b->cap ? b->cap : 256;
    while (cap - len < more)
        cap *= 2;
    loom__bytes *nb = realloc(b, sizeof *nb + cap);
    if (nb == NULL)
        return LOOM_ENOMEM;
    if (b == NULL) {
        nb->off = nb->len = 0;
        nb->aux = 0;
    }
    nb->cap = cap;
    *bp = nb;
    return 0;
}

int loom__bytes_append(loom__bytes **bp, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int r = loom__bytes_reserve(bp, n);
    if (r < 0)
        return r;
    loom__bytes *b = *bp;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void loom__bytes_consume(loom__bytes **bp, size_t n)
{
    loom__bytes *b = *bp;
    if (b == NULL)
        return;
    b->off += n;
    if (b->off >= b->len) {
        b->off = b->len = 0;
        b->aux = 0;
    }
}

void loom__bytes_trim(loom__bytes **bp)
{
    loom__bytes *b = *bp;
    if (b == NULL)
        return;
    size_t n = b->len - b->off;
    if (n == 0) {
        free(b);
        *bp = NULL;
        return;
    }
    if (b->cap > 4096 && b->cap / 4 > n) {
        /* Do not keep a large block for a few bytes. */
        memmove(b->data, b->data + b->off, n);
        b->len = n;
        b->off = 0;
        size_t cap = 256;
        while (cap < n)
            cap *= 2;
        loom__bytes *nb = realloc(b, sizeof *nb + cap);
        if (nb != NULL) {
            nb->cap = cap;
            *bp = nb;
        }
    }
}

void loom__bytes_free(loom__bytes **bp)
{
    free(*bp);
    *bp = NULL;
}
