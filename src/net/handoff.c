/* net/handoff.c - a socket changes owner: an accepted socket of a protocol
 * class (the HTTP server's) becomes a plain socket with the callbacks and
 * timeouts of a loom_tcp_opts, in place (same slab object: only its class
 * changes). Bytes the old owner read but did not consume are kept and
 * delivered to the new on_read in the pending phase, before reading
 * restarts. The new class is the socket's alone; it carries the handoff's
 * state (the held bytes, the pending entry), so nothing is added to the
 * socket. Uses only net_internal.h. */
#include <stdlib.h>
#include <string.h>

#include "net/handoff.h"

typedef struct loom__handoff {
    loom__sock_class cls; /* first: freed by loom__class_unref() */
    loom_socket_cb user_close;
    loom__pending pend; /* delivers held bytes, then restarts reading */
    loom_socket_t *s;
    loom__bytes *held;
} loom__handoff;

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
