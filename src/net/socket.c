/* net/socket.c - the socket: its object and slab, its watcher, reading
 * (through the class's transport when it has one), inactivity timeouts,
 * pausing, and the one close path. The write side is in socket_write.c;
 * connecting, accepting and addresses are in tcp.c; the test transports in
 * transport_test.c.
 *
 * Reads go into the loop's scratch buffer on readiness; on a backend with
 * LOOM_BACKEND_CAP_RECV (io_uring) the backend reads into its own buffers
 * and hands the bytes over (loom__socket_recv_cb), and reading on and off is
 * its recv_start/recv_stop. Either way a plain socket holds no read memory;
 * a transport may hold decoded bytes until the application reads again.
 *
 * Timeouts: no timer per socket. Each distinct timeout value on a loop is a
 * group with one internal timer and a ring of N+1 slots (N <= 16), one slot
 * per tick of t/N ms. Activity moves the socket to the tail of the current
 * tick's slot (an O(1) unlink and append, no time stored in the socket); the
 * slot of tick k expires at tick k+N+1, so a timeout fires between t and
 * t + 2t/N after the last activity. The timer is armed only for the oldest
 * non-empty slot. See docs/NET.md.
 *
 * A socket has two independent clocks. The read clock (the socket's u.tnode
 * in its read group's slots) runs while reading is enabled and restarts on
 * every read and every write progress. The write clock (the write queue's
 * wnode in its write group's wslots) runs while bytes are queued and writing
 * is enabled, and restarts only when bytes leave: a peer that keeps sending
 * but never reads cannot hold it off. The write queue exists exactly while
 * the write clock can run, so an idle socket pays nothing for it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "loom/tls.h"
#include "net/net_internal.h"

/* --- Timeout groups ----------------------------------------------------------- */
#define LOOM__TSLOTS_MAX 17

struct loom__tgroup {
    loom_loop_t *loop;
    uint32_t ms, tick, nslots;
    uint64_t cur; /* tick number of the newest slot */
    loom_timer_t *timer;
    loom__queue expired;                  /* slots that ran out, waiting for the timer callback */
    loom__queue slots[LOOM__TSLOTS_MAX];  /* read clocks: loom_socket.u.tnode */
    loom__queue wexpired;                 /* the same for the write clocks */
    loom__queue wslots[LOOM__TSLOTS_MAX]; /* write clocks: loom__wq.wnode */
};

static void loom__tgroup_arm(loom__tgroup *g);
static void loom__socket_recv_cb(loom_backend_io_t *bio, char *buf, size_t len, int err);

/* --- Per-loop state ------------------------------------------------------------- */

static void loom__net_destroy(loom__handle *h)
{
    loom_loop_t *loop = h->loop;
    loom__net *net = loop->net;
    for (unsigned i = 1; i <= net->ngroups; i++)
        free(net->groups[i]);
    for (int i = 0; i < LOOM__NET_SLABS && net->sock[i].size; i++)
        loom__slab_destroy(&net->sock[i].slab);
    loom__slab_destroy(&net->wq_slab);
    loom__slab_destroy(&net->ref_slab);
    loom__bytes_free(&net->tls_out);
    free(net->tls_buf);
    free(net);
    free(h);
    loop->net = NULL;
}

static void loom__net_close_cb(loom_socket_t *s, void *arg)
{
    (void)arg;
    loom__socket_close_now(s, false);
}

/* loop->net_free: closes every server and socket without callbacks (only
 * release callbacks of zero-copy buffers run), then closes a sentinel
 * handle. The closing list is FIFO, so the sentinel is freed after every
 * socket closed before it; its free function releases the slabs. */
static void loom__net_loop_free(loom_loop_t *loop)
{
    loom__net *net = loop->net;
    if (net == NULL)
        return;
    loom__servers_free(loop);
    if (net->udp_free)
        net->udp_free(loop);
    if (net->nsockets)
        loom__net_foreach_socket(loop, loom__net_close_cb, NULL);
    for (unsigned i = 1; i <= net->ngroups; i++)
        loom_timer_close(net->groups[i]->timer);
    loom__handle_close(net->sentinel);
}

loom__net *loom__net_get(loom_loop_t *loop)
{
    loom__net *net = loop->net;
    if (LOOM__LIKELY(net != NULL))
        return net;
    net = calloc(1, sizeof *net);
    if (net == NULL)
        return NULL;
    net->sentinel = loom__sentinel_new(loop, net, loom__net_destroy);
    if (net->sentinel == NULL) {
        free(net);
        return NULL;
    }
    net->loop = loop;
    loom__slab_init(&net->wq_slab, sizeof(loom__wq));
    loom__slab_init(&net->ref_slab, sizeof(loom__wreq));
    loom__queue_init(&net->servers);
    loop->net = net;
    loop->net_free = loom__net_loop_free;
    return net;
}

char *loom__net_scratch(loom_loop_t *loop)
{
    if (LOOM__UNLIKELY(loop->scratch == NULL)) {
        loop->scratch = malloc(LOOM__SCRATCH_SIZE);
        if (loop->scratch == NULL)
            return NULL;
        loop->scratch_size = LOOM__SCRATCH_SIZE;
    }
    return loop->scratch;
}

int loom__net_timer_new(loom_loop_t *loop, loom_timer_t **out, loom_timer_cb cb, void *data)
{
    loom_timer_t *t;
    int r = loom_timer_new(loop, &t, cb, data);
    if (r < 0)
        return r;
    /* loom's own: not a live object of the application's, and the sockets
     * it serves keep the loop alive, not the timer. */
    t->h.flags |= LOOM__H_INTERNAL;
    loop->live--;
    loom__handle_unref(&t->h);
    *out = t;
    return 0;
}

/* Walks the socket slabs (core's loom__slab_foreach): freed sockets have
 * type 0, or are skipped where the slab poisons them. */
typedef struct loom__foreach_arg {
    void (*fn)(loom_socket_t *s, void *arg);
    void *arg;
} loom__foreach_arg;

static void loom__net_foreach_one(void *obj, void *arg)
{
    loom_socket_t *s = obj;
    loom__foreach_arg *a = arg;
    if (s->h.type == LOOM__T_SOCKET && !(s->h.flags & LOOM__H_CLOSING))
        a->fn(s, a->arg);
}

void loom__net_foreach_socket(loom_loop_t *loop, void (*fn)(loom_socket_t *s, void *arg), void *arg)
{
    loom__net *net = loop->net;
    if (net == NULL)
        return;
    loom__foreach_arg a = {fn, arg};
    for (int i = 0; i < LOOM__NET_SLABS && net->sock[i].size; i++)
        loom__slab_foreach(&net->sock[i].slab, loom__net_foreach_one, &a);
}

/* --- Classes ----------------------------------------------------------------- */

void loom__class_ref(loom__sock_class *cls)
{
    if (!cls->is_static)
        cls->refs++;
}

void loom__class_unref(loom__sock_class *cls)
{
    if (!cls->is_static && --cls->refs == 0) {
        loom_tls_ctx_free(cls->tls);
        free(cls);
    }
}

void loom__class_set_transport(loom__sock_class *cls, const loom__transport *tr)
{
    cls->tr = tr;
    cls->tr_extra = tr ? tr->state_size : 0;
    if (cls->tr_extra < cls->tr_room)
        cls->tr_extra = cls->tr_room;
    cls->tr_set = true;
}

/* --- Socket objects ---------------------------------------------------------- */

/* The socket, the backend's area, the owner's and the transport's bytes. */
static size_t loom__socket_base(const loom_loop_t *loop, const loom__sock_class *cls)
{
    size_t io = (loop->backend->io_size + 15) & ~(size_t)15;
    if (cls->tr_extra == 0)
        return sizeof(loom_socket_t) + io + cls->extra;
    return sizeof(loom_socket_t) + io + ((cls->extra + 15) & ~(size_t)15) + cls->tr_extra;
}

/* Where the kept peer address sits: after the base, 4-aligned (the slab's
 * objects are 8-aligned). */
static size_t loom__socket_peer_off(const loom_loop_t *loop, const loom__sock_class *cls)
{
    return (loom__socket_base(loop, cls) + 3) & ~(size_t)3;
}

/* The object's size: the base, plus the peer address a server's socket
 * keeps: 8 bytes for an IPv4 server, 20 for an IPv6 one (24 after the
 * slab's 8-byte rounding when the base ends 8-aligned, as it does today). */
static size_t loom__socket_size(const loom_loop_t *loop, const loom__sock_class *cls)
{
    if (!cls->keep_peer)
        return loom__socket_base(loop, cls);
    return loom__socket_peer_off(loop, cls) + cls->keep_peer;
}

/* An IPv4 server's sockets keep only the head: family, port, 4 bytes. */
_Static_assert(offsetof(loom__peer_addr, ip) + 4 == 8, "loom__peer_addr: IPv4 head is 8 bytes");

const loom__peer_addr *loom__socket_kept_peer(const loom_socket_t *s)
{
    if (!s->cls->keep_peer)
        return NULL;
    const loom__peer_addr *p =
        (const loom__peer_addr *)((const char *)s + loom__socket_peer_off(s->h.loop, s->cls));
    return p->family ? p : NULL;
}

void loom__socket_keep_peer(loom_socket_t *s, const struct sockaddr *sa, socklen_t len)
{
    if (!s->cls->keep_peer)
        return;
    loom__peer_addr *p = (loom__peer_addr *)((char *)s + loom__socket_peer_off(s->h.loop, s->cls));
    memset(p, 0, s->cls->keep_peer); /* all the class keeps, never more */
    if (sa == NULL)
        return;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(p->ip, &in->sin_addr, 4);
        p->port = ntohs(in->sin_port);
        p->family = AF_INET;
    } else if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6) &&
               s->cls->keep_peer >= sizeof *p) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(p->ip, &in6->sin6_addr, 16);
        p->port = ntohs(in6->sin6_port);
        p->family = AF_INET6;
    }
}

int loom__peer_addr_get(const loom__peer_addr *p, struct sockaddr *addr, socklen_t *len)
{
    if (p == NULL || p->family == 0)
        return LOOM_ENOTCONN;
    if (p->family == AF_INET) {
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons(p->port)};
        memcpy(&in.sin_addr, p->ip, 4);
        if (*len < (socklen_t)sizeof in)
            return LOOM_ENOSPC;
        memcpy(addr, &in, sizeof in);
        *len = sizeof in;
        return 0;
    }
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_port = htons(p->port)};
    memcpy(&in6.sin6_addr, p->ip, 16);
    if (*len < (socklen_t)sizeof in6)
        return LOOM_ENOSPC;
    memcpy(addr, &in6, sizeof in6);
    *len = sizeof in6;
    return 0;
}

static loom__slab *loom__socket_slab(loom__net *net, size_t size, bool create)
{
    /* Entries are used in order and never released before the loop ends. */
    for (int i = 0; i < LOOM__NET_SLABS; i++) {
        if (net->sock[i].size == size)
            return &net->sock[i].slab;
        if (net->sock[i].size == 0) {
            if (!create)
                return NULL;
            net->sock[i].size = size;
            loom__slab_init(&net->sock[i].slab, size);
            return &net->sock[i].slab;
        }
    }
    return NULL;
}

/* The handle's free function, from the loop's closing phase: every other
 * callback of the socket has run (its queue, its connector and its reader are
 * gone since loom__socket_close_now()), so the close notification comes
 * last. Outside any op scope of the socket: an error raised there goes to
 * the loop default, never to the socket's on_event. A discarded socket (its
 * constructor failed) was never the application's: type LOOM__T_OTHER. */
static void loom__socket_free(loom__handle *h)
{
    loom_socket_t *s = (loom_socket_t *)h;
    loom__sock_class *cls = s->cls;
    if (cls->on_close && s->h.type == LOOM__T_SOCKET) {
        loom__op_scope sc;
        loom__op_enter(h->loop, &sc, NULL, NULL, s);
        cls->on_close(s, s->h.data);
        loom__op_leave(h->loop, &sc);
    }
    loom__net *net = h->loop->net;
    loom__slab *sl = loom__socket_slab(net, loom__socket_size(h->loop, cls), false);
    loom__class_unref(cls);
    s->h.type = 0;
    net->nsockets--;
    loom__slab_free(sl, s);
}

static void loom__socket_io_cb(loom__io *w, unsigned events);

static void loom__socket_groups(loom_socket_t *s)
{
    loom__sock_class *cls = s->cls;
    loom_loop_t *loop = s->h.loop;
    int r = loom__tgroup_get(loop, cls->read_timeout_ms);
    int w = loom__tgroup_get(loop, cls->write_timeout_ms);
    /* Out of groups: the socket runs without that timeout. */
    s->h.flags |= (uint32_t)(r > 0 ? r : 0) << LOOM__S_RGROUP_SHIFT;
    s->h.flags |= (uint32_t)(w > 0 ? w : 0) << LOOM__S_WGROUP_SHIFT;
}

loom_socket_t *loom__socket_new(loom_loop_t *loop, loom__sock_class *cls, int fd)
{
    loom__net *net = loom__net_get(loop);
    if (net == NULL)
        return NULL;
    if (LOOM__UNLIKELY(!cls->tr_set)) {
        /* Once per class: the test transport the environment asks for. */
        loom__class_set_transport(cls, loom__transport_by_name(getenv("LOOM_TEST_TRANSPORT")));
    }
    loom__slab *sl = loom__socket_slab(net, loom__socket_size(loop, cls), true);
    if (sl == NULL)
        return NULL;
    loom_socket_t *s = loom__slab_alloc(sl);
    if (s == NULL)
        return NULL;
    loom__handle_init(loop, &s->h, LOOM__T_SOCKET, loom__socket_free, false);
    loom__handle_start(&s->h);
    net->nsockets++;
    s->h.data = cls->data;
    s->cls = cls;
    loom__class_ref(cls);
    s->io.bio.fd = fd;
    loom__socket_keep_peer(s, NULL, 0); /* none yet: accept or connect records it */
    loom__socket_groups(s);
    return s;
}

/* The watcher lives in the slab object, its backend area right after the
 * socket, so it needs no allocation of its own. */
static void loom__socket_io_setup(loom_socket_t *s, int fd)
{
    loom_loop_t *loop = s->h.loop;
    s->io.bio.fd = fd;
    s->io.bio.events = 0;
    s->io.bio.priv = loop->backend->io_size ? (void *)(s + 1) : NULL;
    if (s->io.bio.priv)
        memset(s->io.bio.priv, 0, loop->backend->io_size);
    s->io.cb = loom__socket_io_cb;
}

static void loom__socket_io_teardown(loom_socket_t *s)
{
    loom_loop_t *loop = s->h.loop;
    if ((loop->backend->caps & LOOM_BACKEND_CAP_RECV) && !s->cls->stream) {
        loop->backend->recv_drop(loop, &s->io.bio);
        s->h.flags &= ~LOOM__S_RECV;
    }
    if (s->io.bio.events) {
        loop->backend->io_remove(loop, &s->io.bio);
        s->io.bio.events = 0;
    }
    s->io.cb = NULL; /* later events of this batch are skipped */
}

int loom__socket_attach(loom_socket_t *s, int fd, bool incoming)
{
    loom_loop_t *loop = s->h.loop;
    loom__socket_io_setup(s, fd);
    if (!incoming && !(s->h.flags & LOOM__S_UNIX)) {
        /* Accepted sockets inherit these from the listener (Linux copies
         * the listener's TCP state into the child), so only clients pay the
         * system calls. */
        if (!s->cls->nagle) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (s->cls->keepalive_s) {
            int one = 1, idle = (int)s->cls->keepalive_s;
            setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        }
    }
    s->h.flags |= LOOM__S_OPEN | (incoming ? LOOM__S_INCOMING : 0);
    if (incoming) {
        loop->stats.tcp_incoming++;
        loop->stats.tcp_incoming_total++;
    } else {
        loop->stats.tcp_outgoing++;
        loop->stats.tcp_outgoing_total++;
    }
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if (s->cls->tr == NULL || s->cls->tr->attach == NULL)
        return 0;
    int r = s->cls->tr->attach(s);
    if (r < 0) {
        loom__socket_fail(s, r);
        return 1;
    }
    return r == 0 && !(s->h.flags & LOOM__H_CLOSING) ? 0 : 1;
}

/* Whether the socket reads the fd now: the application reads, or its
 * transport needs to (a handshake while the application is paused). */
static inline bool loom__socket_rd(loom_socket_t *s)
{
    uint32_t f = s->h.flags;
    if (f & (LOOM__S_EOF | LOOM__S_FLUSHING | LOOM__H_CLOSING))
        return false;
    if (!(f & LOOM__S_RD_OFF))
        return true;
    const loom__transport *tr = s->cls->tr;
    return tr && tr->wants && (tr->wants(s) & LOOM_READABLE);
}

/* The backend could not watch or read s (`what` failed with `code`): nobody
 * would, and it would hang, open, for ever. It fails from the loop with the
 * error instead. */
static void loom__socket_unwatched(loom_socket_t *s, const char *what, int code)
{
    loom_log(s->h.loop, LOOM_LOG_ERR, "%s failed: %s", what, loom_strerror(code));
    loom__wq_schedule(s, LOOM__WQ_ERROR);
    if (s->wq)
        s->wq->error = code;
}

void loom__socket_update_io(loom_socket_t *s)
{
    uint32_t f = s->h.flags;
    if (s->io.bio.fd < 0 || (f & (LOOM__S_CONNECTING | LOOM__H_CLOSING)))
        return;
    unsigned ev = 0;
    bool rd = loom__socket_rd(s);
    if (s->wq && s->wq->bytes && loom__socket_may_write(s, 0))
        ev |= LOOM_WRITABLE;
    loom_loop_t *loop = s->h.loop;
    if (!(loop->backend->caps & LOOM_BACKEND_CAP_RECV) || s->cls->stream) {
        if (rd)
            ev |= LOOM_READABLE;
    } else if (rd != ((f & LOOM__S_RECV) != 0)) {
        /* The backend reads for us: reading on and off is its recv. */
        if (!rd) {
            loop->backend->recv_stop(loop, &s->io.bio);
            s->h.flags &= ~LOOM__S_RECV;
        } else {
            int r = loop->backend->recv_start(loop, &s->io.bio, loom__socket_recv_cb);
            if (LOOM__UNLIKELY(r < 0))
                loom__socket_unwatched(s, "socket read start", r);
            else
                s->h.flags |= LOOM__S_RECV;
        }
    }
    if (ev != s->io.bio.events) {
        int r = loom__io_set(loop, &s->io, ev);
        if (LOOM__UNLIKELY(r < 0))
            loom__socket_unwatched(s, "socket watcher update", r);
    }
}

/* --- Timeouts ------------------------------------------------------------------ */

static void loom__tgroup_advance(loom__tgroup *g, uint64_t n)
{
    if (n <= g->cur)
        return;
    uint64_t steps = n - g->cur;
    if (steps > g->nslots)
        steps = g->nslots;
    for (uint64_t i = 1; i <= steps; i++) {
        loom__queue_splice_tail(&g->expired, &g->slots[(g->cur + i) % g->nslots]);
        loom__queue_splice_tail(&g->wexpired, &g->wslots[(g->cur + i) % g->nslots]);
    }
    g->cur = n;
}

/* Group g's time ran out for s on its read clock or on its write clock
 * (which runs only while bytes wait to be sent): says which ("write timeout
 * (5000 ms)") and fails the socket. */
static void loom__socket_timed_out(loom_socket_t *s, const loom__tgroup *g, bool write)
{
    char what[320], msg[400];
    loom__socket_what(s, what, sizeof what);
    int n =
        snprintf(msg, sizeof msg, "%s timeout (%u ms)", write ? "write" : "read", (unsigned)g->ms);
    if (what[0] && n > 0 && (size_t)n < sizeof msg)
        snprintf(msg + n, sizeof msg - (size_t)n, " on %s", what);
    loom__socket_fail_msg(s, LOOM_ETIMEDOUT, msg);
}

static void loom__tgroup_fire(loom_timer_t *t, void *data)
{
    loom__tgroup *g = data;
    (void)t;
    loom__tgroup_advance(g, g->loop->now / g->tick);
    while (!loom__queue_empty(&g->expired)) {
        loom_socket_t *s = LOOM__CONTAINER_OF(g->expired.next, loom_socket_t, u.tnode);
        loom__queue_remove(&s->u.tnode);
        s->h.flags &= ~LOOM__S_TLIST;
        loom__socket_timed_out(s, g, false);
    }
    while (!loom__queue_empty(&g->wexpired)) {
        loom__wq *wq = LOOM__CONTAINER_OF(g->wexpired.next, loom__wq, wnode);
        loom__queue_remove(&wq->wnode);
        wq->wgroup = 0;
        loom__socket_timed_out(wq->sock, g, true);
    }
    loom__tgroup_arm(g);
}

/* Arms the timer for the oldest non-empty slot. O(slots) = O(17). */
static void loom__tgroup_arm(loom__tgroup *g)
{
    uint64_t now = g->loop->now;
    if (!loom__queue_empty(&g->expired) || !loom__queue_empty(&g->wexpired)) {
        loom_timer_start(g->timer, 0, 0);
        return;
    }
    for (uint32_t k = 1; k <= g->nslots; k++) {
        uint32_t i = (uint32_t)((g->cur + k) % g->nslots);
        if (loom__queue_empty(&g->slots[i]) && loom__queue_empty(&g->wslots[i]))
            continue;
        uint64_t due = (g->cur + k) * g->tick;
        loom_timer_start(g->timer, due > now ? due - now : 0, 0);
        return;
    }
    loom_timer_stop(g->timer);
}

int loom__tgroup_get(loom_loop_t *loop, uint32_t ms)
{
    if (ms == 0)
        return 0;
    loom__net *net = loom__net_get(loop);
    if (net == NULL)
        return LOOM_ENOMEM;
    for (unsigned i = 1; i <= net->ngroups; i++)
        if (net->groups[i]->ms == ms)
            return (int)i;
    if (net->ngroups == LOOM__S_GROUP_MASK)
        return LOOM_ETOOMANY;
    loom__tgroup *g = calloc(1, sizeof *g);
    if (g == NULL)
        return LOOM_ENOMEM;
    g->loop = loop;
    g->ms = ms;
    g->tick = (ms + 15) / 16;
    g->nslots = (ms + g->tick - 1) / g->tick + 1;
    g->cur = loop->now / g->tick;
    loom__queue_init(&g->expired);
    loom__queue_init(&g->wexpired);
    for (unsigned i = 0; i < LOOM__TSLOTS_MAX; i++) {
        loom__queue_init(&g->slots[i]);
        loom__queue_init(&g->wslots[i]);
    }
    if (loom__net_timer_new(loop, &g->timer, loom__tgroup_fire, g) < 0) {
        free(g);
        return LOOM_ENOMEM;
    }
    net->groups[++net->ngroups] = g;
    return (int)net->ngroups;
}

/* The read clock's group if it runs now (reading enabled), else 0. */
static unsigned loom__socket_rgroup(const loom_socket_t *s)
{
    uint32_t f = s->h.flags;
    if (f &
        (LOOM__S_CONNECTING | LOOM__H_CLOSING | LOOM__S_RD_OFF | LOOM__S_EOF | LOOM__S_FLUSHING))
        return 0;
    return (f >> LOOM__S_RGROUP_SHIFT) & LOOM__S_GROUP_MASK;
}

/* The write clock's group if it runs now (bytes queued, writing enabled),
 * else 0. */
static unsigned loom__socket_wgroup(loom_socket_t *s)
{
    uint32_t f = s->h.flags;
    if ((f & (LOOM__S_CONNECTING | LOOM__H_CLOSING)) || s->wq == NULL || s->wq->bytes == 0 ||
        !loom__socket_may_write(s, 0))
        return 0;
    return (f >> LOOM__S_WGROUP_SHIFT) & LOOM__S_GROUP_MASK;
}

void loom__wclock_stop(loom__wq *wq)
{
    if (wq->wgroup) {
        loom__queue_remove(&wq->wnode);
        wq->wgroup = 0;
    }
}

/* Starts, stops or keeps the write clock as the socket's state requires;
 * `progress` (bytes left) restarts it. A running clock is otherwise left
 * alone, so queueing more or reading does not hold it off. O(1). */
void loom__wclock_update(loom_socket_t *s, bool progress)
{
    loom__wq *wq = s->wq;
    if (wq == NULL)
        return;
    unsigned gi = loom__socket_wgroup(s);
    if (gi == 0) {
        loom__wclock_stop(wq);
        return;
    }
    if (gi == wq->wgroup && !progress)
        return;
    loom__wclock_stop(wq);
    loom__tgroup *g = ((loom__net *)s->h.loop->net)->groups[gi];
    uint64_t n = s->h.loop->now / g->tick;
    if (n > g->cur)
        loom__tgroup_advance(g, n);
    loom__queue_insert_tail(&g->wslots[n % g->nslots], &wq->wnode);
    wq->wgroup = (uint8_t)gi;
    if (!loom_timer_active(g->timer) || !loom__queue_empty(&g->wexpired))
        loom__tgroup_arm(g);
}

void loom__socket_touch(loom_socket_t *s)
{
    loom__wclock_update(s, false);
    unsigned gi = loom__socket_rgroup(s);
    if (gi == 0) {
        if (s->h.flags & LOOM__S_TLIST) {
            loom__queue_remove(&s->u.tnode);
            s->h.flags &= ~LOOM__S_TLIST;
        }
        return;
    }
    loom__tgroup *g = ((loom__net *)s->h.loop->net)->groups[gi];
    uint64_t n = s->h.loop->now / g->tick;
    if (n > g->cur)
        loom__tgroup_advance(g, n);
    if (s->h.flags & LOOM__S_TLIST)
        loom__queue_remove(&s->u.tnode);
    loom__queue_insert_tail(&g->slots[n % g->nslots], &s->u.tnode);
    s->h.flags |= LOOM__S_TLIST;
    if (!loom_timer_active(g->timer) || !loom__queue_empty(&g->expired))
        loom__tgroup_arm(g);
}

/* --- Callbacks ------------------------------------------------------------------ */

void loom__socket_call(loom_socket_t *s, loom_socket_cb cb)
{
    loom_loop_t *loop = s->h.loop;
    loom__op_scope sc;
    loom__op_enter(loop, &sc, s->cls->on_event, s->h.data, s);
    cb(s, s->h.data);
    loom__op_leave(loop, &sc);
}

/* An accepted connection's event that nobody handles: a log line naming the
 * peer, never the end of the server's loom_run() (as the HTTP server does). */
static void loom__socket_event_log(loom_socket_t *s, loom_event_kind_t kind, int code,
                                   const char *msg)
{
    loom_loop_t *loop = s->h.loop;
    bool error = loom_event_kind_is(kind, LOOM_EV_ERROR);
    if (loop->on_log == NULL || (error ? LOOM_LOG_INFO : LOOM_LOG_DEBUG) > loop->log_level)
        return; /* not even the peer's name is looked up */
    char peer[128] = "?";
    int port = 0;
    loom_socket_peer_name(s, peer, sizeof peer, &port);
    loom_log(loop, error ? LOOM_LOG_INFO : LOOM_LOG_DEBUG, "tcp connection from %s port %d: %s: %s",
             peer, port, loom_event_kind_name(kind),
             msg ? msg : (code ? loom_strerror(code) : loom_event_kind_name(kind)));
}

void loom__socket_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    if (loom__socket_dead(s))
        return;
    if (s->cls->proto_event) {
        s->cls->proto_event(s, kind, code, msg);
        return;
    }
    if (LOOM__UNLIKELY(s->cls->on_event == NULL && s->h.loop->on_event == NULL &&
                       (s->h.flags & LOOM__S_INCOMING))) {
        loom__socket_event_log(s, kind, code, msg);
        return;
    }
    loom__event_emit(s->h.loop, s->cls->on_event, s->h.data, kind, code, msg, s);
}

/* "1.2.3.4:80" or "[::1]:80" for an IP address into buf; false for another
 * family. */
static bool loom__ip_name(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        if (inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip) == NULL)
            return false;
        snprintf(buf, len, "%s:%d", ip, ntohs(in->sin_port));
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip) == NULL)
            return false;
        snprintf(buf, len, "[%s]:%d", ip, ntohs(in6->sin6_port));
        return true;
    }
    return false;
}

bool loom__socket_kept_peer_name(const loom_socket_t *s, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    return loom__peer_addr_get(loom__socket_kept_peer(s), (struct sockaddr *)&ss, &sl) == 0 &&
           loom__ip_name(&ss, buf, len);
}

void loom__socket_peer_name(loom_socket_t *s, char *buf, size_t len)
{
    buf[0] = '\0';
    const loom__transport *tr = s->cls->tr;
    if (tr && tr->peer) {
        tr->peer(s, buf, len);
        if (buf[0])
            return;
    }
    const char *host = s->cls->host; /* a client's name for its peer, or NULL */
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (loom__peer_addr_get(loom__socket_kept_peer(s), (struct sockaddr *)&ss, &sl) < 0 &&
        (s->io.bio.fd < 0 || s->cls->stream ||
         getpeername(s->io.bio.fd, (struct sockaddr *)&ss, &sl) < 0)) {
        if (host)
            snprintf(buf, len, "%s", host);
        return;
    }
    char addr[INET6_ADDRSTRLEN + 8];
    if (loom__ip_name(&ss, addr, sizeof addr)) {
        if (host)
            snprintf(buf, len, "%s (%s)", host, addr); /* "localhost:80 (127.0.0.1:80)" */
        else
            snprintf(buf, len, "%s", addr);
    } else if (ss.ss_family == AF_UNIX && sl > offsetof(struct sockaddr_un, sun_path)) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)&ss;
        size_t n = sl - offsetof(struct sockaddr_un, sun_path);
        if (un->sun_path[0] == '\0') /* abstract: "@name" */
            snprintf(buf, len, "@%.*s", (int)(n - 1), un->sun_path + 1);
        else
            snprintf(buf, len, "%.*s", (int)strnlen(un->sun_path, n), un->sun_path);
    }
}

bool loom__socket_is_pipe(loom_socket_t *s)
{
    if (s->cls->name == NULL || s->cls->name[0] == '\0')
        return false;
    if (s->cls->stream)
        return true;
    char peer[300];
    loom__socket_peer_name(s, peer, sizeof peer);
    return peer[0] == '\0'; /* a socketpair end: a process's stdio */
}

void loom__socket_what(loom_socket_t *s, char *buf, size_t len)
{
    char peer[300];
    loom__socket_peer_name(s, peer, sizeof peer);
    if (peer[0]) {
        snprintf(buf, len, "the connection with %s", peer);
        return;
    }
    if (s->cls->name && s->cls->name[0]) {
        snprintf(buf, len, "%s", s->cls->name);
        return;
    }
    buf[0] = '\0';
    /* An accepted Unix connection: its peer is unnamed, its own end is the
     * server's path. */
    struct sockaddr_un un;
    socklen_t sl = sizeof un;
    if (s->io.bio.fd < 0 || s->cls->stream ||
        getsockname(s->io.bio.fd, (struct sockaddr *)&un, &sl) < 0 || un.sun_family != AF_UNIX ||
        sl <= offsetof(struct sockaddr_un, sun_path))
        return;
    size_t n = sl - offsetof(struct sockaddr_un, sun_path);
    if (un.sun_path[0] == '\0')
        snprintf(buf, len, "a connection accepted on @%.*s", (int)(n - 1), un.sun_path + 1);
    else
        snprintf(buf, len, "a connection accepted on %.*s", (int)strnlen(un.sun_path, n),
                 un.sun_path);
}

void loom__socket_fail_msg(loom_socket_t *s, int code, const char *msg)
{
    if (s->h.flags & LOOM__H_CLOSING)
        return;
    /* Every hook gets the text, proto_event too (the event would say the
     * same: loom__event_emit() falls back to it as well). Without one, the
     * reason and the peer: "connection reset by peer on the connection with
     * 127.0.0.1:8080". */
    char text[400];
    loom_event_kind_t kind = loom__sock_err_kind(code);
    if (msg == NULL) {
        char what[320];
        loom__socket_what(s, what, sizeof what);
        msg = loom_strerror(code);
        if (kind == LOOM_EV_TCP_RESET && loom__socket_is_pipe(s)) {
            /* A process's pipe or a wrapped fd whose other end went away
             * is a closed pipe, not a TCP reset: "stdin of process 4711
             * (cat): reader closed (EPIPE)". */
            kind = LOOM_EV_CONN_ERROR;
            snprintf(text, sizeof text, "%s: reader closed%s (%s)", s->cls->name,
                     code == LOOM_ECONNRESET ? " with data unread" : "", loom_err_name(code));
            msg = text;
        } else if (what[0]) {
            snprintf(text, sizeof text, "%s on %s", msg, what);
            msg = text;
        }
    }
    loom__socket_event(s, kind, code, msg);
    loom__socket_close_now(s, false);
}

void loom__socket_fail(loom_socket_t *s, int code)
{
    loom__socket_fail_msg(s, code, NULL);
}

/* --- Reading --------------------------------------------------------------------- */

/* The peer's end was read: reading stops; the end is reported now, or by
 * the transport once it has delivered the bytes it holds. */
static void loom__socket_eof(loom_socket_t *s)
{
    s->h.flags |= LOOM__S_EOF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if (s->cls->tr)
        s->cls->tr->read(s, NULL, 0);
    else
        loom__socket_eof_report(s);
}

void loom__socket_eof_report(loom_socket_t *s)
{
    loom__socket_event(s, LOOM_EV_TCP_EOF, LOOM_EOF, NULL);
    if (loom__socket_dead(s) || s->cls->half_open)
        return;
    loom_socket_close(s);
}

void loom__socket_deliver_app(loom_socket_t *s, char *buf, size_t n)
{
    loom_loop_t *loop = s->h.loop;
    if (s->cls->proto_read) {
        s->cls->proto_read(s, buf, n);
    } else if (s->cls->on_read) {
        loom__op_scope sc;
        loom__op_enter(loop, &sc, s->cls->on_event, s->h.data, s);
        s->cls->on_read(s, buf, n, s->h.data);
        loom__op_leave(loop, &sc);
    }
}

/* Hands n bytes read from the fd to the transport, or to the reader. */
static inline void loom__socket_deliver(loom_socket_t *s, char *buf, size_t n)
{
    s->h.loop->stats.bytes_read += (uint64_t)n;
    if (s->h.flags & LOOM__S_TLIST)
        loom__socket_touch(s);
    if (s->cls->tr)
        s->cls->tr->read(s, buf, n);
    else
        loom__socket_deliver_app(s, buf, n);
}

/* What the backend read for us (CAP_RECV): bytes, the end, or an error. */
static void loom__socket_recv_cb(loom_backend_io_t *bio, char *buf, size_t len, int err)
{
    loom_socket_t *s = LOOM__CONTAINER_OF(bio, loom_socket_t, io.bio);
    if (LOOM__UNLIKELY(!loom__socket_rd(s)))
        return; /* recv_stop is called on each of these: not reached */
    if (len > 0)
        loom__socket_deliver(s, buf, len);
    else if (err == 0)
        loom__socket_eof(s);
    else
        loom__socket_fail(s, err);
}

static void loom__socket_read(loom_socket_t *s)
{
    loom_loop_t *loop = s->h.loop;
    char *buf = loom__net_scratch(loop);
    if (LOOM__UNLIKELY(buf == NULL)) {
        loom__socket_fail(s, LOOM_ENOMEM);
        return;
    }
    size_t size = loop->scratch_size;
    if (s->h.flags & LOOM__S_RSMALL)
        size = LOOM__SOCKET_READ_SMALL;
    int batch = s->cls->read_batch ? s->cls->read_batch : 4;
    for (int i = 0; i < batch; i++) {
        ssize_t n = read(s->io.bio.fd, buf, size);
        if (n > 0) {
            loom__socket_deliver(s, buf, (size_t)n);
            if (!loom__socket_rd(s))
                return;
            if ((size_t)n < size)
                return;
            continue;
        }
        if (n == 0) {
            loom__socket_eof(s);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            loom__socket_fail(s, loom__err(errno));
        return;
    }
}

static void loom__socket_io_cb(loom__io *w, unsigned events)
{
    loom_socket_t *s = LOOM__CONTAINER_OF(w, loom_socket_t, io);
    if (LOOM__UNLIKELY(s->h.flags & LOOM__H_CLOSING))
        return;
    if ((events & (LOOM_WRITABLE | LOOM_HUP)) && s->wq && s->wq->bytes &&
        loom__socket_may_write(s, 0)) {
        if (loom__socket_flush(s) < 0)
            return;
    }
    if ((events & (LOOM_READABLE | LOOM_HUP)) && loom__socket_rd(s)) {
        /* With the backend reading (S_RECV), its read reports the hang-up;
         * a read() here could take bytes out of its order. */
        if (!(s->h.flags & LOOM__S_RECV))
            loom__socket_read(s);
        return;
    }
    if ((events & LOOM_HUP) && !(s->h.flags & LOOM__H_CLOSING)) {
        /* An error or hang-up nobody reads: report a pending error, and
         * stop a level-triggered backend from repeating it. */
        int err = 0;
        socklen_t len = sizeof err;
        if (s->cls->stream)
            loom__socket_fail(s, LOOM_EPIPE); /* a pipe's reader went away */
        else if (getsockopt(s->io.bio.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
            loom__socket_fail(s, loom__err(err));
    }
}

/* --- Closing ------------------------------------------------------------------------ */

void loom__socket_close_now(loom_socket_t *s, bool reset)
{
    if (s->h.flags & LOOM__H_CLOSING)
        return;
    loom_loop_t *loop = s->h.loop;
    if (s->h.flags & LOOM__S_CONNECTING)
        loom__connect_cancel(s);
    if (s->h.flags & LOOM__S_TLIST) {
        loom__queue_remove(&s->u.tnode);
        s->h.flags &= ~LOOM__S_TLIST;
    }
    if (s->h.flags & LOOM__S_OPEN) {
        if (s->h.flags & LOOM__S_INCOMING)
            loop->stats.tcp_incoming--;
        else
            loop->stats.tcp_outgoing--;
        s->h.flags &= ~LOOM__S_OPEN;
    }
    int fd = s->io.bio.fd;
    if (fd >= 0) {
        loom__socket_io_teardown(s);
        if (reset && !s->cls->stream) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
        s->io.bio.fd = -1;
    }
    loom__handle_close(&s->h);
    if (s->cls->tr && s->cls->tr->free)
        s->cls->tr->free(s);
    if (s->wq)
        loom__wq_destroy(s); /* may run release callbacks: last */
}

void loom__socket_discard(loom_socket_t *s)
{
    s->h.type = LOOM__T_OTHER; /* see loom__socket_free() */
    loom__socket_close_now(s, false);
}

int loom_socket_close(loom_socket_t *s)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    const loom__transport *tr = s->cls->tr;
    if (tr && tr->shutdown && s->io.bio.fd >= 0 &&
        !(s->h.flags & (LOOM__S_CONNECTING | LOOM__S_SHUT_DONE))) {
        /* The transport's end (TLS: close_notify) after the queued bytes;
         * none while it is still handshaking. */
        (void)tr->shutdown(s);
        if (loom__socket_closing(s))
            return 0;
    }
    if ((s->h.flags & LOOM__S_CONNECTING) || s->io.bio.fd < 0 || s->wq == NULL ||
        s->wq->bytes == 0) {
        loom__socket_close_now(s, false);
        return 0;
    }
    s->h.flags |= LOOM__S_FLUSHING;
    s->h.flags &= ~LOOM__S_WR_OFF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
    return 0;
}

int loom_socket_abort(loom_socket_t *s)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    loom__socket_close_now(s, s->wq && s->wq->bytes);
    return 0;
}

/* Runs the user's on_connect, then sends what was queued while connecting
 * (and shuts the write side if asked). */
static void loom__socket_connected(loom_socket_t *s)
{
    if (s->cls->on_connect) {
        loom__socket_call(s, s->cls->on_connect);
        if (loom__socket_dead(s))
            return;
    }
    if (s->wq && s->wq->bytes && loom__socket_may_write(s, 0)) {
        loom__socket_flush(s);
        return;
    }
    loom__socket_shut_wr(s);
}

void loom__socket_ready(loom_socket_t *s)
{
    if ((s->h.flags & LOOM__S_INCOMING) && s->cls->proto_accept) {
        s->cls->proto_accept(s);
        if (!loom__socket_dead(s) && (s->wq == NULL || s->wq->bytes == 0))
            loom__socket_shut_wr(s); /* one asked for meanwhile, if any */
    } else {
        loom__socket_connected(s);
    }
    if (s->cls->tr && !loom__socket_dead(s))
        loom__socket_pending_soon(s);
}

void loom__socket_pending_soon(loom_socket_t *s)
{
    if (s->cls->tr && s->cls->tr->pending)
        loom__wq_schedule(s, LOOM__WQ_HELD);
}

/* --- Pausing ----------------------------------------------------------------------- */

void loom__socket_read_stop(loom_socket_t *s)
{
    if (s->h.flags & LOOM__S_RD_OFF)
        return;
    s->h.flags |= LOOM__S_RD_OFF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
}

void loom__socket_read_start(loom_socket_t *s)
{
    if (!(s->h.flags & LOOM__S_RD_OFF))
        return;
    s->h.flags &= ~LOOM__S_RD_OFF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if (s->cls->tr)
        loom__socket_pending_soon(s);
}

bool loom__socket_quiet(loom_socket_t *s)
{
    if ((s->h.flags & (LOOM__H_CLOSING | LOOM__S_FLUSHING | LOOM__S_EOF | LOOM__S_CONNECTING)) ||
        s->io.bio.fd < 0)
        return false;
    char b;
    ssize_t n = recv(s->io.bio.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    /* n > 0: bytes; 0: the peer's end; an error other than "nothing yet":
     * a reset, or any other failure. */
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

int loom_socket_disable(loom_socket_t *s, unsigned what)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (what & LOOM_READABLE)
        s->h.flags |= LOOM__S_RD_OFF;
    if (what & LOOM_WRITABLE)
        s->h.flags |= LOOM__S_WR_OFF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
    return 0;
}

int loom_socket_enable(loom_socket_t *s, unsigned what)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (what & LOOM_READABLE)
        s->h.flags &= ~LOOM__S_RD_OFF;
    if (what & LOOM_WRITABLE)
        s->h.flags &= ~LOOM__S_WR_OFF;
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if ((what & LOOM_READABLE) && s->cls->tr)
        loom__socket_pending_soon(s);
    return 0;
}

void loom__socket_set_groups(loom_socket_t *s, unsigned rgroup, unsigned wgroup)
{
    uint32_t mask =
        (LOOM__S_GROUP_MASK << LOOM__S_RGROUP_SHIFT) | (LOOM__S_GROUP_MASK << LOOM__S_WGROUP_SHIFT);
    s->h.flags = (s->h.flags & ~mask) |
                 ((uint32_t)(rgroup & LOOM__S_GROUP_MASK) << LOOM__S_RGROUP_SHIFT) |
                 ((uint32_t)(wgroup & LOOM__S_GROUP_MASK) << LOOM__S_WGROUP_SHIFT);
    loom__socket_touch(s);
}

void loom__socket_set_rgroup(loom_socket_t *s, unsigned rgroup)
{
    uint32_t mask = LOOM__S_GROUP_MASK << LOOM__S_RGROUP_SHIFT;
    uint32_t nf =
        (s->h.flags & ~mask) | ((uint32_t)(rgroup & LOOM__S_GROUP_MASK) << LOOM__S_RGROUP_SHIFT);
    if (nf != s->h.flags) {
        s->h.flags = nf;
        loom__socket_touch(s);
    }
}

int loom_socket_set_timeouts(loom_socket_t *s, uint32_t read_ms, uint32_t write_ms)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    int r = loom__tgroup_get(s->h.loop, read_ms);
    if (r < 0)
        return r;
    int w = loom__tgroup_get(s->h.loop, write_ms);
    if (w < 0)
        return w;
    loom__socket_set_groups(s, (unsigned)r, (unsigned)w);
    return 0;
}

/* --- Accessors ---------------------------------------------------------------------- */

void *loom_socket_data(const loom_socket_t *s)
{
    return s ? s->h.data : NULL;
}

int loom_socket_set_data(loom_socket_t *s, void *data)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    s->h.data = data;
    return 0;
}

loom_loop_t *loom_socket_loop(const loom_socket_t *s)
{
    return s->h.loop;
}

size_t loom_socket_queued(const loom_socket_t *s)
{
    if (s == NULL || (s->h.flags & LOOM__H_CLOSING) || s->wq == NULL)
        return 0;
    return loom__wq_app(s);
}

int loom_socket_closed(const loom_socket_t *s)
{
    return s == NULL || loom__socket_dead(s);
}

int loom_socket_fd(const loom_socket_t *s)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    return s->io.bio.fd;
}

/* The fd of a connected TCP socket, for a TCP option; else the error. */
static int loom__socket_tcp_fd(const loom_socket_t *s)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (s->h.flags & LOOM__S_UNIX)
        return LOOM_ENOTSUP;
    if (s->io.bio.fd < 0)
        return LOOM_ENOTCONN;
    return s->io.bio.fd;
}

static int loom__setsockopt_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof value) < 0 ? loom__err(errno) : 0;
}

int loom_socket_set_nodelay(loom_socket_t *s, int on)
{
    int fd = loom__socket_tcp_fd(s);
    if (fd < 0)
        return fd;
    return loom__setsockopt_int(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int loom_socket_set_keepalive(loom_socket_t *s, int on, unsigned idle_s)
{
    int fd = loom__socket_tcp_fd(s);
    if (fd < 0)
        return fd;
    int r = loom__setsockopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, on ? 1 : 0);
    if (r == 0 && on && idle_s)
        r = loom__setsockopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)idle_s);
    return r;
}
