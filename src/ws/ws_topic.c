/* ws/ws_topic.c - broadcast: prepared messages (framed once, sent by
 * reference) and topics (publish / subscribe) with a policy for slow
 * subscribers. Topics are a small open-hashed table of names; each keeps a
 * doubly-linked list of subscriptions, and each connection a singly-linked
 * list of its own, so that its close leaves every topic in O(its topics). */
#include <stdlib.h>
#include <string.h>

#include "ws/ws_internal.h"

/* A prepared message's compressed form: a whole server frame (RSV1 set)
 * whose payload was compressed with a fresh compressor of 2^bits window. */
typedef struct {
    uint32_t hl;
    uint8_t bits;
    size_t len; /* header + payload */
    char bytes[];
} ws_prepared_z;

struct loom_ws_prepared {
    uint32_t refs;
    uint32_t hl;      /* header length */
    uint8_t zstate;   /* WS_PZ_*: the compressed form */
    size_t len;       /* header + payload */
    ws_prepared_z *z; /* made on the first send that can use it */
    char bytes[];
};

enum { WS_PZ_NONE = 0, WS_PZ_MADE, WS_PZ_WORSE };

/* Frame header of a server frame (no mask); returns its length. */
static size_t ws_head(unsigned char *h, int b0, size_t len)
{
    h[0] = (unsigned char)b0;
    if (len < 126) {
        h[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        return 4;
    }
    h[1] = 127;
    for (int k = 0; k < 8; k++)
        h[2 + k] = (unsigned char)((uint64_t)len >> (56 - 8 * k));
    return 10;
}

typedef struct ws_topic ws_topic;

struct loom__ws_sub {
    loom__ws_sub *prev, *next; /* in the topic */
    loom__ws_sub *conn_next;   /* in the connection */
    ws_topic *topic;
    loom_ws_t *ws;
};

struct ws_topic {
    ws_topic *hnext;
    loom__ws_sub *subs;
    size_t count;
    loom_ws_topics_t *set;
    char name[];
};

struct loom_ws_topics {
    loom_loop_t *loop;
    loom_ws_topics_opts o;
    ws_topic **tab;
    size_t nbuckets, ntopics;
    uint64_t skipped, closed_slow;
};

/* --- Prepared messages -------------------------------------------------------- */

int loom_ws_prepared_new(loom_ws_type_t type, const void *msg, size_t len, loom_ws_prepared_t **out)
{
    if (out == NULL || (type != LOOM_WS_TEXT && type != LOOM_WS_BINARY) || (len && msg == NULL))
        return LOOM_EINVAL;
    size_t hl = len < 126 ? 2 : len <= 0xFFFF ? 4 : 10;
    loom_ws_prepared_t *p = malloc(sizeof *p + hl + len);
    if (p == NULL)
        return LOOM_ENOMEM;
    ws_head((unsigned char *)p->bytes, 0x80 | type, len);
    if (len)
        memcpy(p->bytes + hl, msg, len);
    p->refs = 1;
    p->hl = (uint32_t)hl;
    p->len = hl + len;
    p->z = NULL;
    p->zstate = WS_PZ_NONE;
    *out = p;
    return 0;
}

void loom_ws_prepared_ref(loom_ws_prepared_t *p)
{
    if (p)
        p->refs++;
}

void loom_ws_prepared_unref(loom_ws_prepared_t *p)
{
    if (p && --p->refs == 0) {
        free(p->z);
        free(p);
    }
}

static void ws_prepared_release(const void *buf, size_t len, void *data)
{
    (void)buf;
    (void)len;
    loom_ws_prepared_unref(data);
}

/* Makes p's compressed form for a connection whose codec `d` starts every
 * message afresh: compressed once with d's window, level and memLevel, it
 * is valid for every connection without context takeover (in its sending
 * direction) whose window is at least as large. Sets p->zstate. */
static void ws_prepared_compress(loom_ws_prepared_t *p, const loom_ws_deflate_t *d)
{
    size_t n = p->len - p->hl, cap = loom_ws_deflate_bound(n), ol = 0;
    ws_prepared_z *z = malloc(sizeof *z + 10 + cap);
    if (z == NULL)
        return; /* not now: this send compresses for itself */
    loom_ws_deflate_t c = {
        .tx_bits = d->tx_bits, .tx_reset = 1, .level = d->level, .mem_level = d->mem_level};
    int r = loom_ws_deflate_compress(&c, p->bytes + p->hl, n, 1, z->bytes + 10, cap, &ol);
    loom_ws_deflate_free(&c);
    if (r < 0) {
        free(z);
        return;
    }
    if (ol >= n) { /* incompressible: the plain frame is as good */
        free(z);
        p->zstate = WS_PZ_WORSE;
        return;
    }
    unsigned char h[10];
    size_t hl = ws_head(h, 0x80 | 0x40 | (p->bytes[0] & 0x0F), ol);
    memmove(z->bytes + hl, z->bytes + 10, ol);
    memcpy(z->bytes, h, hl);
    z->hl = (uint32_t)hl;
    z->len = hl + ol;
    z->bits = d->tx_bits;
    ws_prepared_z *small = realloc(z, sizeof *z + z->len);
    p->z = small ? small : z;
    p->zstate = WS_PZ_MADE;
}

int loom_ws_send_prepared(loom_ws_t *ws, loom_ws_prepared_t *p)
{
    if (ws == NULL || p == NULL)
        return LOOM_EINVAL;
    if (ws->state == WS_CLOSED || ws->state == WS_CLOSE_SENT)
        return LOOM_ECLOSED;
    if (ws->send_op)
        return LOOM_ESTATE;
    int type = p->bytes[0] & 0x0F;
    size_t n = p->len - p->hl;
    const char *frame = p->bytes;
    size_t flen = p->len;
    loom_ws_deflate_t *d = loom__ws_z(ws);
    if (d && n >= LOOM_WS_DEFLATE_MIN) {
        if (d->tx_reset && !d->tx_open) {
            /* No context takeover: the shared compressed form. */
            if (p->zstate == WS_PZ_NONE)
                ws_prepared_compress(p, d);
            if (p->zstate == WS_PZ_MADE && p->z->bits <= d->tx_bits) {
                frame = p->z->bytes;
                flen = p->z->len;
            } else if (p->zstate != WS_PZ_WORSE) {
                return loom__ws_send_z(ws, 0x40 | type, true, p->bytes + p->hl, n);
            }
        } else if (n >= LOOM_WS_PREPARED_DEFLATE_MIN) {
            /* Context takeover: compressed for this connection. */
            return loom__ws_send_z(ws, 0x40 | type, true, p->bytes + p->hl, n);
        }
    }
    if (!ws->cls->server) { /* a client masks every frame: no sharing */
        unsigned hl = frame == p->bytes ? p->hl : p->z->hl;
        return loom__ws_write_frame(ws, (unsigned char)frame[0] & 0x7F, true, frame + hl,
                                    flen - hl);
    }
    p->refs++;
    int r = loom_socket_write_ref(ws->sock, frame, flen, ws_prepared_release, p);
    if (r < 0)
        p->refs--;
    return r;
}

/* --- Topics ---------------------------------------------------------------------- */

static size_t ws_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int loom_ws_topics_new(loom_loop_t *loop, const loom_ws_topics_opts *opts, loom_ws_topics_t **out)
{
    if (loop == NULL || out == NULL)
        return LOOM_EINVAL;
    loom_ws_topics_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return LOOM_ENOMEM;
    t->nbuckets = 64;
    t->tab = calloc(t->nbuckets, sizeof *t->tab);
    if (t->tab == NULL) {
        free(t);
        return LOOM_ENOMEM;
    }
    t->loop = loop;
    if (opts)
        t->o = *opts;
    *out = t;
    return 0;
}

static ws_topic **ws_topic_slot(loom_ws_topics_t *t, const char *name)
{
    ws_topic **pp = &t->tab[ws_hash(name) & (t->nbuckets - 1)];
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->hnext;
    return pp;
}

static void ws_topics_grow(loom_ws_topics_t *t)
{
    size_t nb = t->nbuckets * 2;
    ws_topic **tab = calloc(nb, sizeof *tab);
    if (tab == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        ws_topic *e = t->tab[i], *n;
        for (; e; e = n) {
            n = e->hnext;
            size_t b = ws_hash(e->name) & (nb - 1);
            e->hnext = tab[b];
            tab[b] = e;
        }
    }
    free(t->tab);
    t->tab = tab;
    t->nbuckets = nb;
}

static void ws_topic_drop_if_empty(ws_topic *tp)
{
    if (tp->subs)
        return;
    loom_ws_topics_t *t = tp->set;
    ws_topic **pp = ws_topic_slot(t, tp->name);
    *pp = tp->hnext;
    t->ntopics--;
    free(tp);
}

/* Unlinks s from its topic and frees it (not from its connection's list). */
static void ws_sub_unlink(loom__ws_sub *s)
{
    ws_topic *tp = s->topic;
    if (s->prev)
        s->prev->next = s->next;
    else
        tp->subs = s->next;
    if (s->next)
        s->next->prev = s->prev;
    tp->count--;
    free(s);
    ws_topic_drop_if_empty(tp);
}

int loom_ws_subscribe(loom_ws_topics_t *t, loom_ws_t *ws, const char *topic)
{
    if (t == NULL || ws == NULL || topic == NULL)
        return LOOM_EINVAL;
    if (ws->state == WS_CLOSED)
        return LOOM_ECLOSED;
    for (loom__ws_sub *s = loom__ws_subs(ws); s; s = s->conn_next)
        if (s->topic->set == t && strcmp(s->topic->name, topic) == 0)
            return 0;
    ws_topic **pp = ws_topic_slot(t, topic);
    ws_topic *tp = *pp;
    bool fresh = false;
    if (tp == NULL) {
        size_t n = strlen(topic);
        tp = calloc(1, sizeof *tp + n + 1);
        if (tp == NULL)
            return LOOM_ENOMEM;
        memcpy(tp->name, topic, n + 1);
        tp->set = t;
        *pp = tp;
        t->ntopics++;
        fresh = true;
    }
    loom__ws_more *x = loom__ws_more_get(ws);
    loom__ws_sub *s = x ? calloc(1, sizeof *s) : NULL;
    if (s == NULL) {
        if (fresh)
            ws_topic_drop_if_empty(tp);
        return LOOM_ENOMEM;
    }
    s->topic = tp;
    s->ws = ws;
    s->next = tp->subs;
    if (tp->subs)
        tp->subs->prev = s;
    tp->subs = s;
    tp->count++;
    s->conn_next = x->subs;
    x->subs = s;
    if (fresh && t->ntopics > t->nbuckets)
        ws_topics_grow(t);
    return 0;
}

int loom_ws_unsubscribe(loom_ws_topics_t *t, loom_ws_t *ws, const char *topic)
{
    if (t == NULL || ws == NULL || topic == NULL)
        return LOOM_EINVAL;
    for (loom__ws_sub **pp = ws->x ? &ws->x->subs : NULL; pp && *pp; pp = &(*pp)->conn_next) {
        loom__ws_sub *s = *pp;
        if (s->topic->set == t && strcmp(s->topic->name, topic) == 0) {
            *pp = s->conn_next;
            ws_sub_unlink(s);
            loom__ws_more_trim(ws);
            return 0;
        }
    }
    return LOOM_ENOENT;
}

void loom__ws_unsubscribe_all(loom_ws_t *ws)
{
    loom__ws_sub *s = loom__ws_subs(ws), *n;
    if (ws->x)
        ws->x->subs = NULL;
    for (; s; s = n) {
        n = s->conn_next;
        ws_sub_unlink(s);
    }
}

void loom_ws_topics_free(loom_ws_topics_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        while (t->tab[i]) {
            ws_topic *tp = t->tab[i];
            /* Each subscription leaves its connection's list too. */
            while (tp->subs) {
                loom__ws_sub *s = tp->subs;
                for (loom__ws_sub **pp = &s->ws->x->subs; *pp; pp = &(*pp)->conn_next)
                    if (*pp == s) {
                        *pp = s->conn_next;
                        break;
                    }
                tp->subs = s->next;
                free(s);
            }
            t->tab[i] = tp->hnext;
            free(tp);
        }
    }
    free(t->tab);
    free(t);
}

int loom_ws_publish_prepared(loom_ws_topics_t *t, const char *topic, loom_ws_prepared_t *p)
{
    if (t == NULL || topic == NULL || p == NULL)
        return LOOM_EINVAL;
    ws_topic *tp = *ws_topic_slot(t, topic);
    if (tp == NULL)
        return 0;
    int sent = 0;
    /* Closing a slow subscriber from here unlinks nothing (that happens in
     * its on_close, from the loop), so walking the list is safe. */
    for (loom__ws_sub *s = tp->subs; s; s = s->next) {
        loom_ws_t *ws = s->ws;
        /* Each subscriber costs a system call, which evicts the walk's
         * data: fetch ahead what the next ones need (the node 3 ahead,
         * the connection 2 ahead, its socket 1 ahead), each from a line
         * fetched on an earlier turn. */
        loom__ws_sub *n1 = s->next;
        if (n1) {
            loom__ws_sub *n2 = n1->next;
            __builtin_prefetch(n1->ws->sock);
            if (n2) {
                __builtin_prefetch(n2->next);
                __builtin_prefetch(n2->ws);
                __builtin_prefetch(&n2->ws->state);
            }
        }
        if (ws->state != WS_OPEN)
            continue;
        uint32_t hw = ws->cls->o.high_water ? ws->cls->o.high_water : (1u << 20);
        if (loom_socket_queued(ws->sock) >= hw) {
            if (t->o.slow == LOOM_WS_SLOW_CLOSE) {
                t->closed_slow++;
                loom__ws_fail(ws, LOOM_WS_POLICY, false, "subscriber too slow for topic %s",
                              tp->name);
            } else
                t->skipped++;
            continue;
        }
        if (loom_ws_send_prepared(ws, p) >= 0)
            sent++;
    }
    return sent;
}

int loom_ws_publish(loom_ws_topics_t *t, const char *topic, loom_ws_type_t type, const void *msg,
                    size_t len)
{
    loom_ws_prepared_t *p;
    int r = loom_ws_prepared_new(type, msg, len, &p);
    if (r < 0)
        return r;
    r = loom_ws_publish_prepared(t, topic, p);
    loom_ws_prepared_unref(p);
    return r;
}

uint64_t loom_ws_topics_skipped(const loom_ws_topics_t *t)
{
    return t ? t->skipped : 0;
}

uint64_t loom_ws_topics_closed_slow(const loom_ws_topics_t *t)
{
    return t ? t->closed_slow : 0;
}
