/* net/handoff.c - a socket changes owner: an accepted socket of a protocol
 * class (the HTTP server's) becomes a plain socket with the callbacks and
 * timeouts of a loom_tcp_opts, in place (same slab object: only its class
 * changes). Bytes the old owner read but did not consume are kept and
 * delivered to the new on_read in the pending phase, before reading
 * restarts. The new class is the socket's alone until then; it carries the
 * handoff's state (the held bytes, the pending entry), so nothing is added
 * to the socket. Afterwards the socket may move to a class shared with the
 * other sockets taken over alike (loom__socket_handoff_share()), so that a
 * taken-over connection costs its slab object and nothing more. Uses only
 * net_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "net/handoff.h"

typedef struct loom__handoff {
    loom__sock_class cls; /* first: freed by loom__class_unref() */
    loom_socket_cb user_close;
    loom__pending pend; /* delivers held bytes, then restarts reading */
    loom_socket_t *s;
    loom__bytes *held;
    loom__sock_class **share; /* see loom__socket_handoff_share() */
} loom__handoff;

/* Whether sockets of class a may use b instead: everything but the data
 * slot's initial value and the reference count is the same. */
static bool loom__class_same(const loom__sock_class *a, const loom__sock_class *b)
{
    return a->on_read == b->on_read && a->on_connect == b->on_connect &&
           a->on_write == b->on_write && a->on_drain == b->on_drain && a->on_event == b->on_event &&
           a->on_close == b->on_close && a->proto_read == b->proto_read &&
           a->proto_event == b->proto_event && a->proto_accept == b->proto_accept &&
           a->proto_admit == b->proto_admit && a->proto_accept_error == b->proto_accept_error &&
           a->read_timeout_ms == b->read_timeout_ms && a->write_timeout_ms == b->write_timeout_ms &&
           a->high_water == b->high_water && a->low_water == b->low_water &&
           a->keepalive_s == b->keepalive_s && a->extra == b->extra && a->tr == b->tr &&
           a->tr_extra == b->tr_extra && a->tr_room == b->tr_room && a->tls == b->tls &&
           a->alpn == b->alpn && a->alpn_len == b->alpn_len && a->tr_set == b->tr_set &&
           a->stream == b->stream && a->read_batch == b->read_batch && a->nagle == b->nagle &&
           a->half_open == b->half_open && a->is_static == b->is_static &&
           a->keep_peer == b->keep_peer;
}

/* The held bytes are delivered: the socket leaves its own class for the
 * shared one in *ho->share (made, or remade if it differs), and the
 * handoff's class (ho itself) is freed. Without memory the socket keeps
 * its own class, which works as well. */
static void loom__handoff_unshare(loom_socket_t *s, loom__handoff *ho)
{
    loom__sock_class want = ho->cls;
    want.on_close = ho->user_close;
    want.data = NULL;
    loom__sock_class *sc = *ho->share;
    if (sc == NULL || !loom__class_same(sc, &want)) {
        sc = malloc(sizeof *sc);
        if (sc == NULL)
            return;
        *sc = want;
        sc->refs = 1; /* the slot's */
        if (*ho->share)
            loom__class_unref(*ho->share);
        *ho->share = sc;
    }
    loom__class_ref(sc);
    s->cls = sc;
    loom__class_unref(&ho->cls);
}

static void loom__handoff_run(loom__pending *p)
{
    loom__handoff *ho = LOOM__CONTAINER_OF(p, loom__handoff, pend);
    loom_socket_t *s = ho->s;
    if (loom__socket_dead(s)) {
        loom__bytes_free(&ho->held);
        return;
    }
    if (loom__bytes_size(ho->held) && ho->cls.on_read) {
        /* Taken off the class first: on_read may close the socket. */
        loom__bytes *b = ho->held;
        ho->held = NULL;
        loom_loop_t *loop = s->h.loop;
        loom__op_scope sc;
        loom__op_enter(loop, &sc, ho->cls.on_event, s->h.data, s);
        ho->cls.on_read(s, loom__bytes_data(b), loom__bytes_size(b), s->h.data);
        loom__op_leave(loop, &sc);
        loom__bytes_free(&b);
        if (loom__socket_dead(s))
            return;
    }
    loom__bytes_free(&ho->held);
    if (ho->share)
        loom__handoff_unshare(s, ho); /* ho may be gone */
    loom__socket_read_start(s);
}

/* The class's on_close: drops what is still held, then the user's. */
static void loom__handoff_close(loom_socket_t *s, void *data)
{
    loom__handoff *ho = (loom__handoff *)s->cls;
    loom__pending_cancel(&ho->pend);
    loom__bytes_free(&ho->held);
    if (ho->user_close)
        ho->user_close(s, data);
}

int loom__socket_handoff(loom_socket_t *s, const loom_tcp_opts *opts)
{
    loom_loop_t *loop = s->h.loop;
    int rg = loom__tgroup_get(loop, opts->read_timeout_ms);
    if (rg < 0)
        return rg;
    int wg = loom__tgroup_get(loop, opts->write_timeout_ms);
    if (wg < 0)
        return wg;
    loom__handoff *ho = calloc(1, sizeof *ho);
    if (ho == NULL)
        return LOOM_ENOMEM;
    loom__sock_class *cls = &ho->cls;
    LOOM__CLASS_FROM_OPTS(cls, opts);
    cls->on_connect = NULL; /* connected long ago: never called */
    cls->on_close = loom__handoff_close;
    loom__sock_class *old = s->cls;
    cls->extra = old->extra; /* the same slab object size */
    /* The transport stays: its per-socket state lives in the same object,
     * and the bytes it holds reach the new on_read after the held ones. */
    cls->tr = old->tr;
    cls->tr_extra = old->tr_extra;
    cls->tr_set = old->tr_set;
    cls->keep_peer = old->keep_peer; /* the same object, its peer address still in it */
    cls->refs = 1;
    ho->user_close = opts->on_close;
    ho->s = s;
    ho->pend.fn = loom__handoff_run;
    loom__queue_init(&ho->pend.node);

    s->cls = cls;
    s->h.data = opts->data;
    loom__class_unref(old);
    loom__socket_read_stop(s); /* until the held bytes are delivered */
    loom__socket_set_groups(s, (unsigned)rg, (unsigned)wg);
    loom__pending_queue(loop, &ho->pend);
    return 0;
}

void loom__socket_handoff_share(loom_socket_t *s, loom__sock_class **slot)
{
    if (s->cls->on_close != loom__handoff_close)
        return; /* not in a handoff (or its bytes are delivered already) */
    loom__handoff *ho = (loom__handoff *)s->cls;
    ho->share = slot;
}

int loom__socket_handoff_hold(loom_socket_t *s, const char *p, size_t n)
{
    loom__handoff *ho = (loom__handoff *)s->cls;
    if (n == 0)
        return 0;
    if (loom__bytes_append(&ho->held, p, n) < 0) {
        loom__socket_close_now(s, true);
        return LOOM_ENOMEM;
    }
    return 0;
}
