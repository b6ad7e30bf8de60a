/* net/udp.c - UDP sockets (loom/udp.h).
 *
 * Receive: on readiness, recvmmsg() fills up to 64 slots of a per-loop
 * receive area (2 MiB of address space, allocated on first use; the kernel
 * touches only the pages datagrams land in, so 64 KiB slots cost their
 * datagrams' size in memory). The slots are spaced a cache line more than
 * their size apart, so that the heads of small datagrams do not all map to
 * one cache set. Each datagram goes to on_recv; a GRO-coalesced receive is
 * split back into its segments. At most max_per_wakeup datagrams are read per
 * readiness (fairness), and a short recvmmsg() ends the drain early.
 *
 * Send: datagrams are copied into the socket's queue (one payload block and
 * an array of entries; both reset when the queue empties). The queue goes out
 * with one sendmmsg() of up to 64 messages - after each received batch of the
 * same socket (an echo answers a batch with one system call), else from the
 * pending phase - and runs of consecutive entries to one destination with
 * equal sizes (the last may be shorter) become one UDP_SEGMENT (GSO)
 * message: the payloads are contiguous in the block, so each message is one
 * iovec. A kernel that refuses GSO turns it off for the socket.
 *
 * Errors: with IP_RECVERR (connected sockets, or opts.icmp_errors) an ICMP
 * error is queued on the socket's error queue with the destination that
 * failed; the watcher reports it as LOOM_HUP and it is drained from there
 * into events. Without it, a pending socket error (sk_err) fails the next
 * recv or send, and is reported with the connected peer's name.
 *
 * The per-loop state hangs off the net state (net->udp) and is torn down by a
 * sentinel handle from the net layer's loop-free hook (net->udp_free).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loom/udp.h"
#include "net/net_internal.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define LOOM__UDP_AREA      (2u << 20) /* per-loop receive area */
#define LOOM__UDP_BATCH     64         /* messages per recvmmsg / sendmmsg */
#define LOOM__UDP_CMSG      64         /* control bytes per received message */
#define LOOM__UDP_COST      64         /* queue accounting per datagram */
#define LOOM__UDP_MAX       65507      /* largest IPv4 UDP payload */
#define LOOM__UDP_GSO_SEGS  64         /* segments per GSO message */
#define LOOM__UDP_GSO_BYTES 65000      /* payload per GSO message */

typedef union loom__udp_addr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} loom__udp_addr;

/* One queued datagram: its payload is block[off, off + len). */
typedef struct loom__udp_ent {
    uint32_t off, len;
    socklen_t alen; /* 0: the connected peer */
    loom__udp_addr addr;
} loom__udp_ent;

/* Deferred work (u->todo). */
enum { LOOM__UDP_FLUSH = 1, LOOM__UDP_ERROR = 2 };

/* Socket flags in h.flags, above the LOOM__H_* bits. */
enum {
    LOOM__U_CONNECTED = 1u << 8,
    LOOM__U_GSO = 1u << 9,     /* may try UDP_SEGMENT */
    LOOM__U_GRO = 1u << 10,    /* UDP_GRO is on */
    LOOM__U_ERRQ = 1u << 11,   /* IP_RECVERR is on */
    LOOM__U_BEHIND = 1u << 12, /* a send returned 1: on_drain due when empty */
    LOOM__U_INRECV = 1u << 13, /* delivering a batch: its end flushes */
    LOOM__U_V6 = 1u << 14,
    LOOM__U_CMSG = 1u << 15, /* datagrams carry control messages (GRO, SO_RXQ_OVFL) */
};

struct loom_udp {
    loom__handle h; /* h.data is the data slot */
    loom__io io;
    loom__queue node; /* in the loop's list of open sockets */
    loom__pending pend;
    unsigned todo;
    bool pend_queued;

    loom_udp_recv_cb on_recv;
    loom_udp_cb on_drain;
    loom_event_cb on_event;
    loom_udp_cb on_close;
    uint32_t slot, max_wake, high, limit;

    /* The queue. */
    loom__udp_ent *ent;
    uint32_t head, tail, ent_cap;
    char *block;
    size_t used, block_cap;
    size_t qbytes; /* as the marks count */

    /* A send error waiting for the pending phase. */
    int err;
    char err_msg[160];

    loom__udp_addr peer;
    socklen_t peer_len;
    uint32_t ovfl; /* the last SO_RXQ_OVFL value */
    loom_udp_stats_t st;
};

typedef struct loom__udp_state {
    loom__queue socks;
    loom__handle *sentinel;
    char *area;
    struct mmsghdr msgs[LOOM__UDP_BATCH];
    struct iovec iov[LOOM__UDP_BATCH];
    loom__udp_addr names[LOOM__UDP_BATCH];
    char cmsg[LOOM__UDP_BATCH][LOOM__UDP_CMSG] __attribute__((aligned(8)));
    uint32_t nent[LOOM__UDP_BATCH]; /* send: entries per message */
} loom__udp_state;

static void loom__udp_io_cb(loom__io *w, unsigned events);
static void loom__udp_pending(loom__pending *p);

/* --- Per-loop state ---------------------------------------------------------- */

static void loom__udp_state_destroy(loom__handle *h)
{
    loom__udp_state *st = h->data;
    loom__net *net = h->loop->net;
    if (net && net->udp == st) {
        net->udp = NULL;
        net->udp_free = NULL;
    }
    free(st->area);
    free(st);
    free(h);
}

/* net->udp_free: closes every open UDP socket (their on_close runs from the
 * closing list), then the sentinel, which is freed after them. */
static void loom__udp_loop_free(loom_loop_t *loop)
{
    loom__net *net = loop->net;
    loom__udp_state *st = net->udp;
    while (!loom__queue_empty(&st->socks))
        loom_udp_close(LOOM__CONTAINER_OF(st->socks.next, loom_udp_t, node));
    loom__handle_close(st->sentinel);
}

static loom__udp_state *loom__udp_state_get(loom_loop_t *loop)
{
    loom__net *net = loom__net_get(loop);
    if (net == NULL)
        return NULL;
    if (LOOM__LIKELY(net->udp != NULL))
        return net->udp;
    loom__udp_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->sentinel = loom__sentinel_new(loop, st, loom__udp_state_destroy);
    if (st->sentinel == NULL) {
        free(st);
        return NULL;
    }
    loom__queue_init(&st->socks);
    net->udp = st;
    net->udp_free = loom__udp_loop_free;
    return st;
}

/* --- Addresses --------------------------------------------------------------- */

static int loom__udp_parse(const char *ip, int port, loom__udp_addr *out, socklen_t *len)
{
    if (port < 0 || port > 65535)
        return LOOM_EINVAL;
    memset(out, 0, sizeof *out);
    if (ip == NULL)
        return LOOM_EINVAL;
    if (strcmp(ip, "localhost") == 0)
        ip = "127.0.0.1";
    if (inet_pton(AF_INET, ip, &out->in4.sin_addr) == 1) {
        out->in4.sin_family = AF_INET;
        out->in4.sin_port = htons((uint16_t)port);
        *len = sizeof out->in4;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    const char *scope = strchr(ip, '%');
    size_t n = scope ? (size_t)(scope - ip) : strlen(ip);
    if (n >= INET6_ADDRSTRLEN)
        return LOOM_EINVAL;
    memcpy(buf, ip, n);
    buf[n] = '\0';
    if (inet_pton(AF_INET6, buf, &out->in6.sin6_addr) != 1)
        return LOOM_EINVAL;
    out->in6.sin6_family = AF_INET6;
    out->in6.sin6_port = htons((uint16_t)port);
    if (scope) {
        unsigned idx = if_nametoindex(scope + 1);
        if (idx == 0) {
            char *end;
            unsigned long v = strtoul(scope + 1, &end, 10);
            if (*end != '\0' || v == 0)
                return LOOM_EINVAL;
            idx = (unsigned)v;
        }
        out->in6.sin6_scope_id = idx;
    }
    *len = sizeof out->in6;
    return 0;
}

int loom_udp_addr(const char *ip, int port, struct sockaddr_storage *out, socklen_t *len)
{
    if (out == NULL)
        return LOOM_EINVAL;
    loom__udp_addr a;
    socklen_t n = 0;
    int r = loom__udp_parse(ip, port, &a, &n);
    if (r < 0)
        return r;
    memset(out, 0, sizeof *out);
    memcpy(out, &a, n);
    if (len)
        *len = n;
    return 0;
}

static void loom__udp_name(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
    char ip[64];
    int port = 0;
    if (len == 0 || loom_sockaddr_name(sa, len, ip, sizeof ip, &port) < 0) {
        snprintf(buf, size, "?");
        return;
    }
    if (sa->sa_family == AF_INET6)
        snprintf(buf, size, "[%s]:%d", ip, port);
    else
        snprintf(buf, size, "%s:%d", ip, port);
}

/* The socket's own address for messages ("0.0.0.0:5353", "[::1]:9"): the
 * kernel's, which a bound socket keeps whatever happened to it since. */
static void loom__udp_local(const loom_udp_t *u, char *buf, size_t size)
{
    loom__udp_addr a;
    socklen_t len = sizeof a;
    if (getsockname(u->io.bio.fd, &a.sa, &len) < 0)
        len = 0;
    loom__udp_name(&a.sa, len, buf, size);
}

/* --- Events ------------------------------------------------------------------------ */

/* Reports an error of the socket; never ends the loop on its own: with no
 * handler at all it is logged and dropped (a remote peer causes these). */
static void loom__udp_event(loom_udp_t *u, int code, const char *msg)
{
    loom_loop_t *loop = u->h.loop;
    if (loom__handle_closing(&u->h))
        return;
    if (u->on_event == NULL && loop->on_event == NULL) {
        loom_log(loop, LOOM_LOG_INFO, "%s", msg);
        return;
    }
    loom__event_emit(loop, u->on_event, u->h.data, LOOM_EV_CONN_ERROR, code, msg, u);
}

static bool loom__udp_icmp_code(int e)
{
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN ||
           e == ENETDOWN || e == EPROTO || e == ENOPROTOOPT || e == ETIMEDOUT || e == ECONNRESET ||
           e == EMSGSIZE;
}

/* Drains the error queue (IP_RECVERR): one event per ICMP error, naming the
 * destination that failed. Returns false if the socket was closed. */
static bool loom__udp_errqueue(loom_udp_t *u)
{
    for (int i = 0; i < 64; i++) {
        loom__udp_addr name;
        char cbuf[512] __attribute__((aligned(8)));
        char dummy[1];
        struct iovec iov = {dummy, sizeof dummy};
        struct msghdr m = {.msg_name = &name,
                           .msg_namelen = sizeof name,
                           .msg_iov = &iov,
                           .msg_iovlen = 1,
                           .msg_control = cbuf,
                           .msg_controllen = sizeof cbuf};
        ssize_t r = recvmsg(u->io.bio.fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return true;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
            if (!((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                  (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)))
                continue;
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(c), sizeof ee);
            if (ee.ee_errno == 0)
                continue;
            char who[96], msg[160];
            loom__udp_name(&name.sa, m.msg_namelen, who, sizeof who);
            int code = loom__err((int)ee.ee_errno);
            snprintf(msg, sizeof msg, "udp send to %s failed: %s", who, loom_strerror(code));
            u->st.icmp_errors++;
            loom__udp_event(u, code, msg);
            if (loom__handle_closing(&u->h))
                return false;
        }
    }
    return true;
}

/* A pending socket error (sk_err) surfaced by a receive (`what`: "receive
 * failed") or by LOOM_HUP ("socket error"). On a connected socket it is the
 * peer's answer to a send, and names the peer; else it names the socket's
 * own address ("udp socket on 0.0.0.0:5353: receive failed: ..."). */
static bool loom__udp_sock_error(loom_udp_t *u, int e, const char *what)
{
    if (u->h.flags & LOOM__U_ERRQ)
        return loom__udp_errqueue(u);
    char who[96], msg[200];
    int code = loom__err(e);
    if (u->h.flags & LOOM__U_CONNECTED) {
        loom__udp_name(&u->peer.sa, u->peer_len, who, sizeof who);
        snprintf(msg, sizeof msg, "udp send to %s failed: %s", who, loom_strerror(code));
    } else {
        loom__udp_local(u, who, sizeof who);
        snprintf(msg, sizeof msg, "udp socket on %s: %s: %s", who, what, loom_strerror(code));
    }
    u->st.icmp_errors++;
    loom__udp_event(u, code, msg);
    return !loom__handle_closing(&u->h);
}

/* --- The send queue ---------------------------------------------------------------- */

static void loom__udp_schedule(loom_udp_t *u, unsigned what)
{
    u->todo |= what;
    if (!u->pend_queued) {
        u->pend_queued = true;
        loom__pending_queue(u->h.loop, &u->pend);
    }
}

static void loom__udp_queue_reset(loom_udp_t *u)
{
    u->head = u->tail = 0;
    u->used = 0;
    u->qbytes = 0;
    /* A burst's memory is returned once it has been sent. */
    if (u->block_cap > (256u << 10)) {
        free(u->block);
        u->block = NULL;
        u->block_cap = 0;
    }
    if (u->ent_cap > 4096) {
        free(u->ent);
        u->ent = NULL;
        u->ent_cap = 0;
    }
}

static bool loom__udp_same_dest(const loom__udp_ent *a, const loom__udp_ent *b)
{
    return a->alen == b->alen && (a->alen == 0 || memcmp(&a->addr, &b->addr, a->alen) == 0);
}

/* Records a send error for the pending phase (the first of a flush wins; the
 * rest are counted). */
static void loom__udp_send_failed(loom_udp_t *u, const loom__udp_ent *e, int code)
{
    if (u->err == 0) {
        char who[96];
        if (e->alen)
            loom__udp_name(&e->addr.sa, e->alen, who, sizeof who);
        else
            loom__udp_name(&u->peer.sa, u->peer_len, who, sizeof who);
        snprintf(u->err_msg, sizeof u->err_msg, "udp send to %s failed: %s", who,
                 loom_strerror(code));
        u->err = code;
        loom__udp_schedule(u, LOOM__UDP_ERROR);
    }
}

/* Drops the first `n` entries of the queue. */
static void loom__udp_consume(loom_udp_t *u, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        u->qbytes -= u->ent[u->head + i].len + LOOM__UDP_COST;
    u->head += n;
    if (u->head == u->tail)
        loom__udp_queue_reset(u);
}

/* Sends the queue: sendmmsg() batches of up to 64 messages. Returns 0 when
 * it is empty, 1 when the kernel's buffer is full. Runs no callback (errors
 * are deferred to the pending phase). */
static int loom__udp_send_queue(loom_udp_t *u)
{
    loom_loop_t *loop = u->h.loop;
    loom__udp_state *st = ((loom__net *)loop->net)->udp;
    int fd = u->io.bio.fd;
    int retries = 0;
    while (u->head < u->tail) {
        bool connected = (u->h.flags & LOOM__U_CONNECTED) != 0;
        bool gso = (u->h.flags & LOOM__U_GSO) != 0;
        unsigned m = 0;
        uint32_t i = u->head;
        while (i < u->tail && m < LOOM__UDP_BATCH) {
            loom__udp_ent *e = &u->ent[i];
            uint32_t n = 1, total = e->len;
            if (gso && e->len > 0) {
                while (i + n < u->tail && n < LOOM__UDP_GSO_SEGS) {
                    loom__udp_ent *x = &u->ent[i + n];
                    if (x->len == 0 || x->len > e->len || total + x->len > LOOM__UDP_GSO_BYTES ||
                        !loom__udp_same_dest(e, x))
                        break;
                    total += x->len;
                    n++;
                    if (x->len < e->len)
                        break; /* a shorter one ends the run */
                }
            }
            struct msghdr *h = &st->msgs[m].msg_hdr;
            st->iov[m].iov_base = u->block + e->off;
            st->iov[m].iov_len = total;
            h->msg_iov = &st->iov[m];
            h->msg_iovlen = 1;
            h->msg_name = (connected || e->alen == 0) ? NULL : &e->addr;
            h->msg_namelen = h->msg_name ? e->alen : 0;
            h->msg_flags = 0;
            if (n > 1) {
                h->msg_control = st->cmsg[m];
                h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
                struct cmsghdr *c = CMSG_FIRSTHDR(h);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
                uint16_t seg = (uint16_t)e->len;
                memcpy(CMSG_DATA(c), &seg, sizeof seg);
            } else {
                h->msg_control = NULL;
                h->msg_controllen = 0;
            }
            st->nent[m] = n;
            i += n;
            m++;
        }
        int r = sendmmsg(fd, st->msgs, m, 0);
        u->st.send_calls++;
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return 1;
            loom__udp_ent *first = &u->ent[u->head];
            if (st->nent[0] > 1 &&
                (e == EINVAL || e == EIO || e == ENOPROTOOPT || e == EOPNOTSUPP || e == EMSGSIZE)) {
                /* The kernel or the device refuses GSO: plain sends from now. */
                u->h.flags &= ~LOOM__U_GSO;
                continue;
            }
            if (e == ENOBUFS) {
                /* The device queue dropped it: lost as on the wire. */
                u->st.send_errors += st->nent[0];
                loom__udp_consume(u, st->nent[0]);
                continue;
            }
            if (loom__udp_icmp_code(e) && e != EMSGSIZE && retries++ < 2) {
                /* An earlier datagram's ICMP error (sk_err), reported by this
                 * call instead of sending: report it, then send again. */
                if (u->h.flags & LOOM__U_ERRQ)
                    loom__udp_schedule(u, LOOM__UDP_ERROR);
                else
                    loom__udp_send_failed(u, first, loom__err(e));
                u->st.icmp_errors++;
                continue;
            }
            u->st.send_errors += st->nent[0];
            loom__udp_send_failed(u, first, loom__err(e));
            loom__udp_consume(u, st->nent[0]);
            continue;
        }
        uint32_t n = 0;
        for (int k = 0; k < r; k++) {
            n += st->nent[k];
            if (st->nent[k] > 1)
                u->st.gso_batches++;
            u->st.sent_bytes += st->iov[k].iov_len;
            loop->stats.bytes_written += st->iov[k].iov_len;
        }
        u->st.sent_datagrams += n;
        loom__udp_consume(u, n);
        if ((unsigned)r < m)
            continue; /* the next call reports why (or sends) */
    }
    return 0;
}

/* Sends what it can and sets the watcher: WRITABLE while some remain. */
static int loom__udp_flush_now(loom_udp_t *u)
{
    int r = loom__udp_send_queue(u);
    unsigned want = LOOM_READABLE | (r ? LOOM_WRITABLE : 0);
    if (u->io.bio.events != want)
        (void)loom__io_set(u->h.loop, &u->io, want);
    return r;
}

static void loom__udp_drained(loom_udp_t *u)
{
    if (u->head == u->tail && (u->h.flags & LOOM__U_BEHIND) && !loom__handle_closing(&u->h)) {
        u->h.flags &= ~LOOM__U_BEHIND;
        if (u->on_drain) {
            loom__op_scope s;
            loom__op_enter(u->h.loop, &s, u->on_event, u->h.data, u);
            u->on_drain(u, u->h.data);
            loom__op_leave(u->h.loop, &s);
        }
    }
}

static void loom__udp_pending(loom__pending *p)
{
    loom_udp_t *u = LOOM__CONTAINER_OF(p, loom_udp_t, pend);
    u->pend_queued = false;
    unsigned todo = u->todo;
    u->todo = 0;
    if (loom__handle_closing(&u->h))
        return;
    if ((todo & LOOM__UDP_FLUSH) && u->head < u->tail)
        loom__udp_flush_now(u);
    if (u->err) {
        int code = u->err;
        u->err = 0;
        loom__udp_event(u, code, u->err_msg);
    } else if (todo & LOOM__UDP_ERROR) {
        if (!loom__udp_errqueue(u))
            return;
    }
    if (loom__handle_closing(&u->h))
        return;
    loom__udp_drained(u);
}

static int loom__udp_enqueue(loom_udp_t *u, const struct sockaddr *to, const struct iovec *iov,
                             int iovcnt)
{
    if (loom__handle_closing(&u->h))
        return LOOM_ECLOSED;
    if (iovcnt < 0 || (iovcnt > 0 && iov == NULL))
        return LOOM_EINVAL;
    size_t len = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len && iov[i].iov_base == NULL)
            return LOOM_EINVAL;
        len += iov[i].iov_len;
        if (len > LOOM__UDP_MAX)
            return LOOM_EMSGSIZE;
    }
    socklen_t alen = 0;
    if (u->h.flags & LOOM__U_CONNECTED) {
        if (to != NULL)
            return LOOM_EISCONN;
    } else {
        if (to == NULL)
            return LOOM_EINVAL;
        if (to->sa_family == AF_INET && !(u->h.flags & LOOM__U_V6))
            alen = sizeof(struct sockaddr_in);
        else if (to->sa_family == AF_INET6 && (u->h.flags & LOOM__U_V6))
            alen = sizeof(struct sockaddr_in6);
        else if (to->sa_family == AF_INET)
            alen = sizeof(struct sockaddr_in); /* the kernel decides (dual stack) */
        else
            return LOOM_EINVAL;
    }
    size_t cost = len + LOOM__UDP_COST;
    if (u->qbytes + cost > u->limit) {
        u->st.send_refused++;
        return LOOM_EAGAIN;
    }
    if (u->tail == u->ent_cap) {
        uint32_t cap = u->ent_cap ? u->ent_cap * 2 : 64;
        loom__udp_ent *e = realloc(u->ent, cap * sizeof *e);
        if (e == NULL)
            return LOOM_ENOMEM;
        u->ent = e;
        u->ent_cap = cap;
    }
    if (u->used + len > u->block_cap) {
        size_t cap = u->block_cap ? u->block_cap : 16384;
        while (cap < u->used + len)
            cap *= 2;
        char *b = realloc(u->block, cap);
        if (b == NULL)
            return LOOM_ENOMEM;
        u->block = b;
        u->block_cap = cap;
    }
    loom__udp_ent *e = &u->ent[u->tail++];
    e->off = (uint32_t)u->used;
    e->len = (uint32_t)len;
    e->alen = alen;
    if (alen)
        memcpy(&e->addr, to, alen);
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len)
            memcpy(u->block + u->used, iov[i].iov_base, iov[i].iov_len);
        u->used += iov[i].iov_len;
    }
    u->qbytes += cost;
    /* Inside a batch of this socket its end flushes; else the pending phase. */
    if (!(u->h.flags & LOOM__U_INRECV))
        loom__udp_schedule(u, LOOM__UDP_FLUSH);
    if (u->qbytes >= u->high) {
        u->h.flags |= LOOM__U_BEHIND;
        return 1;
    }
    return 0;
}

int loom_udp_send(loom_udp_t *udp, const struct sockaddr *to, const void *bytes, size_t len)
{
    if (udp == NULL || (len && bytes == NULL))
        return LOOM_EINVAL;
    if (len > LOOM__UDP_MAX)
        return loom__handle_closing(&udp->h) ? LOOM_ECLOSED : LOOM_EMSGSIZE;
    struct iovec iov = {(void *)bytes, len};
    return loom__udp_enqueue(udp, to, &iov, 1);
}

int loom_udp_sendv(loom_udp_t *udp, const struct sockaddr *to, const struct iovec *iov, int iovcnt)
{
    if (udp == NULL)
        return LOOM_EINVAL;
    return loom__udp_enqueue(udp, to, iov, iovcnt);
}

int loom_udp_flush(loom_udp_t *udp)
{
    if (udp == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&udp->h))
        return LOOM_ECLOSED;
    if (udp->head == udp->tail)
        return 0;
    int r = loom__udp_flush_now(udp);
    if (r == 0 && (udp->h.flags & LOOM__U_BEHIND))
        loom__udp_schedule(udp, 0); /* on_drain from the loop, never from here */
    return r;
}

size_t loom_udp_queued(const loom_udp_t *udp)
{
    if (udp == NULL || loom__handle_closing(&udp->h))
        return 0;
    return udp->qbytes;
}

/* --- Receiving ----------------------------------------------------------------------- */

static void loom__udp_deliver(loom_udp_t *u, const char *buf, size_t len,
                              const struct sockaddr *from, unsigned flags)
{
    u->st.recv_datagrams++;
    u->st.recv_bytes += len;
    u->h.loop->stats.bytes_read += len;
    if (flags & LOOM_UDP_TRUNCATED)
        u->st.recv_truncated++;
    if (u->on_recv == NULL)
        return;
    loom__op_scope s;
    loom__op_enter(u->h.loop, &s, u->on_event, u->h.data, u);
    u->on_recv(u, buf, len, from, flags, u->h.data);
    loom__op_leave(u->h.loop, &s);
}

static void loom__udp_read(loom_udp_t *u)
{
    loom_loop_t *loop = u->h.loop;
    loom__udp_state *st = ((loom__net *)loop->net)->udp;
    if (LOOM__UNLIKELY(st->area == NULL)) {
        st->area = malloc(LOOM__UDP_AREA);
        if (st->area == NULL) {
            char who[96], msg[160];
            loom__udp_local(u, who, sizeof who);
            snprintf(msg, sizeof msg, "udp socket on %s: receive failed: out of memory", who);
            loom__udp_event(u, LOOM_ENOMEM, msg);
            return;
        }
    }
    size_t stride = ((u->slot + 63) & ~(size_t)63) + 64;
    unsigned batch = (unsigned)(LOOM__UDP_AREA / stride);
    if (batch > LOOM__UDP_BATCH)
        batch = LOOM__UDP_BATCH;
    int fd = u->io.bio.fd;
    uint32_t budget = u->max_wake;
    int errors = 0;
    size_t clen = (u->h.flags & LOOM__U_CMSG) ? LOOM__UDP_CMSG : 0;
    while (budget > 0) {
        unsigned k = budget < batch ? budget : batch;
        for (unsigned i = 0; i < k; i++) {
            struct msghdr *h = &st->msgs[i].msg_hdr;
            st->iov[i].iov_base = st->area + i * stride;
            st->iov[i].iov_len = u->slot;
            h->msg_iov = &st->iov[i];
            h->msg_iovlen = 1;
            h->msg_name = &st->names[i];
            h->msg_namelen = sizeof st->names[i];
            h->msg_control = clen ? st->cmsg[i] : NULL;
            h->msg_controllen = clen;
            h->msg_flags = 0;
        }
        int r = recvmmsg(fd, st->msgs, k, 0, NULL);
        u->st.recv_calls++;
        if (r < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK)
                return;
            if (!loom__udp_sock_error(u, e, "receive failed"))
                return;
            if (++errors > 4)
                return;
            continue; /* more datagrams may wait behind the error */
        }
        u->h.flags |= LOOM__U_INRECV;
        for (int i = 0; i < r; i++) {
            struct msghdr *h = &st->msgs[i].msg_hdr;
            size_t len = st->msgs[i].msg_len;
            unsigned flags = (h->msg_flags & MSG_TRUNC) ? LOOM_UDP_TRUNCATED : 0;
            size_t seg = 0;
            for (struct cmsghdr *c = clen ? CMSG_FIRSTHDR(h) : NULL; c; c = CMSG_NXTHDR(h, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    uint32_t v;
                    memcpy(&v, CMSG_DATA(c), sizeof v);
                    u->ovfl = v;
                } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                    int g;
                    memcpy(&g, CMSG_DATA(c), sizeof g);
                    seg = g > 0 ? (size_t)g : 0;
                }
            }
            const char *buf = st->iov[i].iov_base;
            const struct sockaddr *from = h->msg_namelen ? &st->names[i].sa : NULL;
            if (seg && seg < len && !flags) {
                u->st.gro_batches++;
                for (size_t off = 0; off < len; off += seg) {
                    size_t n = len - off < seg ? len - off : seg;
                    loom__udp_deliver(u, buf + off, n, from, 0);
                    if (loom__handle_closing(&u->h))
                        return;
                }
            } else {
                loom__udp_deliver(u, buf, len, from, flags);
                if (loom__handle_closing(&u->h))
                    return;
            }
        }
        u->h.flags &= ~LOOM__U_INRECV;
        /* Answer the batch with one sendmmsg. */
        if (u->head < u->tail && loom__udp_flush_now(u) == 0)
            loom__udp_drained(u);
        if (loom__handle_closing(&u->h))
            return;
        budget -= (uint32_t)r;
        if ((unsigned)r < k)
            return;
    }
}

static void loom__udp_io_cb(loom__io *w, unsigned events)
{
    loom_udp_t *u = LOOM__CONTAINER_OF(w, loom_udp_t, io);
    if (LOOM__UNLIKELY(loom__handle_closing(&u->h)))
        return;
    if (LOOM__UNLIKELY(events & LOOM_HUP)) {
        if (u->h.flags & LOOM__U_ERRQ) {
            if (!loom__udp_errqueue(u))
                return;
        } else {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(w->bio.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err &&
                !loom__udp_sock_error(u, err, "socket error"))
                return;
        }
    }
    if ((events & LOOM_WRITABLE) && u->head < u->tail) {
        if (loom__udp_flush_now(u) == 0)
            loom__udp_drained(u);
        if (loom__handle_closing(&u->h))
            return;
    } else if ((events & LOOM_WRITABLE) && (u->io.bio.events & LOOM_WRITABLE)) {
        (void)loom__io_set(u->h.loop, &u->io, LOOM_READABLE);
    }
    if (events & LOOM_READABLE)
        loom__udp_read(u);
}

/* --- Creating and closing ------------------------------------------------------------ */

static void loom__udp_free(loom__handle *h)
{
    loom_udp_t *u = LOOM__CONTAINER_OF(h, loom_udp_t, h);
    if (u->on_close)
        u->on_close(u, u->h.data);
    free(u);
}

void loom_udp_close(loom_udp_t *udp)
{
    if (udp == NULL || loom__handle_closing(&udp->h))
        return;
    loom_loop_t *loop = udp->h.loop;
    if (udp->pend_queued) {
        loom__pending_cancel(&udp->pend);
        udp->pend_queued = false;
    }
    loom__io_deinit(loop, &udp->io);
    close(udp->io.bio.fd);
    udp->io.bio.fd = -1;
    free(udp->ent);
    free(udp->block);
    udp->ent = NULL;
    udp->block = NULL;
    udp->head = udp->tail = udp->ent_cap = 0;
    udp->used = udp->block_cap = udp->qbytes = 0;
    loom__queue_remove(&udp->node);
    loom__handle_stop(&udp->h);
    loom__handle_close(&udp->h);
}

static int loom__setopt(int fd, int level, int name, int v)
{
    return setsockopt(fd, level, name, &v, sizeof v) == 0 ? 0 : loom__err(errno);
}

static int loom__udp_mcast_if(int fd, bool v6, const char *iface)
{
    if (!v6) {
        struct in_addr a;
        if (inet_pton(AF_INET, iface, &a) != 1)
            return LOOM_EINVAL;
        return setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a) == 0 ? 0
                                                                              : loom__err(errno);
    }
    unsigned idx = if_nametoindex(iface);
    if (idx == 0) {
        char *end;
        unsigned long v = strtoul(iface, &end, 10);
        if (*end != '\0' || end == iface)
            return LOOM_EINVAL;
        idx = (unsigned)v;
    }
    return loom__setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, (int)idx);
}

static int loom__udp_options(int fd, bool v6, const loom_udp_opts *o)
{
    int r = 0;
    if (v6 && (r = loom__setopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, o->dual_stack ? 0 : 1)) < 0)
        return r;
    if (o->reuseaddr && (r = loom__setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0)
        return r;
    if (o->reuseport && (r = loom__setopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0)
        return r;
    if (o->broadcast && (r = loom__setopt(fd, SOL_SOCKET, SO_BROADCAST, 1)) < 0)
        return r;
    if (o->sndbuf > 0 && (r = loom__setopt(fd, SOL_SOCKET, SO_SNDBUF, o->sndbuf)) < 0)
        return r;
    if (o->rcvbuf > 0 && (r = loom__setopt(fd, SOL_SOCKET, SO_RCVBUF, o->rcvbuf)) < 0)
        return r;
    if (o->ttl > 0 && (r = v6 ? loom__setopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, o->ttl)
                              : loom__setopt(fd, IPPROTO_IP, IP_TTL, o->ttl)) < 0)
        return r;
    if (o->multicast_ttl > 0 &&
        (r = v6 ? loom__setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, o->multicast_ttl)
                : loom__setopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, o->multicast_ttl)) < 0)
        return r;
    if (o->multicast_loop != 0) {
        int on = o->multicast_loop > 0;
        r = v6 ? loom__setopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on)
               : loom__setopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, on);
        if (r < 0)
            return r;
    }
    if (o->multicast_if && (r = loom__udp_mcast_if(fd, v6, o->multicast_if)) < 0)
        return r;
    return 0;
}

/* Kernel drop counts: SO_MEMINFO reads them on demand (loom_udp_stats());
 * only a kernel without it gets SO_RXQ_OVFL, which costs a control message
 * on every datagram. Returns whether the datagrams carry the count. */
static bool loom__udp_drop_cmsg(int fd)
{
#ifdef SO_MEMINFO
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0)
        return false;
#endif
    return loom__setopt(fd, SOL_SOCKET, SO_RXQ_OVFL, 1) == 0;
}

static int loom__udp_open(loom_loop_t *loop, const char *addr, int port, const loom_udp_opts *opts,
                          bool connect_to, loom_udp_t **out)
{
    static const loom_udp_opts defaults;
    const loom_udp_opts *o = opts ? opts : &defaults;
    if (loop == NULL)
        return LOOM_EINVAL;
    if (loop->freeing)
        return LOOM_ECLOSED;
    if (port < 0 || port > 65535 || o->bind_port < 0 || o->bind_port > 65535)
        return LOOM_EINVAL;
    loom__udp_addr local, peer;
    socklen_t local_len = 0, peer_len = 0;
    memset(&local, 0, sizeof local);
    bool have_local = true;
    int r;
    if (connect_to) {
        if ((r = loom__udp_parse(addr, port, &peer, &peer_len)) < 0)
            return r;
        if (o->bind) {
            if ((r = loom__udp_parse(o->bind, o->bind_port, &local, &local_len)) < 0)
                return r;
        } else {
            have_local = o->bind_port != 0;
            local.sa.sa_family = peer.sa.sa_family;
            local_len = peer_len;
            if (peer.sa.sa_family == AF_INET)
                local.in4.sin_port = htons((uint16_t)o->bind_port);
            else
                local.in6.sin6_port = htons((uint16_t)o->bind_port);
        }
    } else if (addr) {
        if ((r = loom__udp_parse(addr, port, &local, &local_len)) < 0)
            return r;
    } else {
        int fam = o->family ? o->family : AF_INET;
        if (fam == AF_INET) {
            local.in4.sin_family = AF_INET;
            local.in4.sin_port = htons((uint16_t)port);
            local_len = sizeof local.in4;
        } else if (fam == AF_INET6) {
            local.in6.sin6_family = AF_INET6;
            local.in6.sin6_port = htons((uint16_t)port);
            local.in6.sin6_addr = in6addr_any;
            local_len = sizeof local.in6;
        } else {
            return LOOM_EINVAL;
        }
    }
    int fam = local.sa.sa_family;
    bool v6 = fam == AF_INET6;
    if (connect_to && fam != peer.sa.sa_family)
        return LOOM_EINVAL;
    loom__udp_state *st = loom__udp_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;

    int fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return loom__err(errno);
    if ((r = loom__udp_options(fd, v6, o)) < 0)
        goto fail_fd;
    bool gro = false;
    if (o->gro && loom__setopt(fd, SOL_UDP, UDP_GRO, 1) == 0)
        gro = true;
    bool ovfl = loom__udp_drop_cmsg(fd);
    bool errq = connect_to || o->icmp_errors;
    if (errq) {
        r = v6 ? loom__setopt(fd, IPPROTO_IPV6, IPV6_RECVERR, 1)
               : loom__setopt(fd, IPPROTO_IP, IP_RECVERR, 1);
        if (r < 0)
            errq = false; /* errors still come through sk_err on connected sockets */
    }
    if (have_local && bind(fd, &local.sa, local_len) < 0) {
        r = loom__err(errno);
        goto fail_fd;
    }
    if (connect_to && connect(fd, &peer.sa, peer_len) < 0) {
        r = loom__err(errno);
        goto fail_fd;
    }

    loom_udp_t *u = calloc(1, sizeof *u);
    if (u == NULL) {
        r = LOOM_ENOMEM;
        goto fail_fd;
    }
    if ((r = loom__io_init(loop, &u->io, fd, loom__udp_io_cb)) < 0)
        goto fail_u;
    if ((r = loom__io_set(loop, &u->io, LOOM_READABLE)) < 0)
        goto fail_io;
    loom__handle_init(loop, &u->h, LOOM__T_OTHER, loom__udp_free, false);
    loom__handle_start(&u->h);
    u->h.data = o->data;
    u->pend.fn = loom__udp_pending;
    u->on_recv = o->on_recv;
    u->on_drain = o->on_drain;
    u->on_event = o->on_event;
    u->on_close = o->on_close;
    u->slot = o->max_datagram ? o->max_datagram : 65536;
    if (u->slot > 65536)
        u->slot = 65536;
    u->max_wake = o->max_per_wakeup ? o->max_per_wakeup : 256;
    u->high = o->high_water ? o->high_water : (256u << 10);
    u->limit = o->queue_limit ? o->queue_limit : 4 * u->high;
    if (u->limit < u->high)
        u->limit = u->high;
    if (v6)
        u->h.flags |= LOOM__U_V6;
    if (!o->no_gso)
        u->h.flags |= LOOM__U_GSO;
    if (gro)
        u->h.flags |= LOOM__U_GRO;
    if (gro || ovfl)
        u->h.flags |= LOOM__U_CMSG;
    if (errq)
        u->h.flags |= LOOM__U_ERRQ;
    if (connect_to) {
        u->h.flags |= LOOM__U_CONNECTED;
        u->peer = peer;
        u->peer_len = peer_len;
    }
    loom__queue_insert_tail(&st->socks, &u->node);
    if (out)
        *out = u;
    return 0;

fail_io:
    loom__io_deinit(loop, &u->io);
fail_u:
    free(u);
fail_fd:
    close(fd);
    return r;
}

int loom_udp_bind(loom_loop_t *loop, const char *addr, int port, const loom_udp_opts *opts,
                  loom_udp_t **out)
{
    return loom__udp_open(loop, addr, port, opts, false, out);
}

int loom_udp_connect(loom_loop_t *loop, const char *addr, int port, const loom_udp_opts *opts,
                     loom_udp_t **out)
{
    if (addr == NULL || port <= 0)
        return LOOM_EINVAL;
    return loom__udp_open(loop, addr, port, opts, true, out);
}

/* --- Multicast and options ------------------------------------------------------------ */

static int loom__udp_member(loom_udp_t *u, const char *group, const char *source, const char *iface,
                            bool join)
{
    if (u == NULL || group == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&u->h))
        return LOOM_ECLOSED;
    int fd = u->io.bio.fd;
    loom__udp_addr g, s;
    socklen_t glen, slen;
    if (loom__udp_parse(group, 0, &g, &glen) < 0)
        return LOOM_EINVAL;
    if (source && (loom__udp_parse(source, 0, &s, &slen) < 0 || s.sa.sa_family != g.sa.sa_family))
        return LOOM_EINVAL;
    int r;
    if (g.sa.sa_family == AF_INET && source == NULL) {
        struct ip_mreqn m = {.imr_multiaddr = g.in4.sin_addr};
        if (iface && inet_pton(AF_INET, iface, &m.imr_address) != 1)
            return LOOM_EINVAL;
        r = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof m);
    } else if (g.sa.sa_family == AF_INET) {
        struct ip_mreq_source m = {.imr_multiaddr = g.in4.sin_addr,
                                   .imr_sourceaddr = s.in4.sin_addr};
        if (iface && inet_pton(AF_INET, iface, &m.imr_interface) != 1)
            return LOOM_EINVAL;
        r = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_SOURCE_MEMBERSHIP : IP_DROP_SOURCE_MEMBERSHIP,
                       &m, sizeof m);
    } else {
        unsigned idx = 0;
        if (iface) {
            idx = if_nametoindex(iface);
            if (idx == 0) {
                char *end;
                unsigned long v = strtoul(iface, &end, 10);
                if (*end != '\0' || end == iface)
                    return LOOM_EINVAL;
                idx = (unsigned)v;
            }
        }
        if (source == NULL) {
            struct ipv6_mreq m = {.ipv6mr_multiaddr = g.in6.sin6_addr, .ipv6mr_interface = idx};
            r = setsockopt(fd, IPPROTO_IPV6, join ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP, &m,
                           sizeof m);
        } else {
            struct group_source_req m;
            memset(&m, 0, sizeof m);
            m.gsr_interface = idx;
            memcpy(&m.gsr_group, &g.in6, sizeof g.in6);
            memcpy(&m.gsr_source, &s.in6, sizeof s.in6);
            r = setsockopt(fd, IPPROTO_IPV6,
                           join ? MCAST_JOIN_SOURCE_GROUP : MCAST_LEAVE_SOURCE_GROUP, &m, sizeof m);
        }
    }
    return r == 0 ? 0 : loom__err(errno);
}

int loom_udp_join(loom_udp_t *udp, const char *group, const char *iface)
{
    return loom__udp_member(udp, group, NULL, iface, true);
}

int loom_udp_leave(loom_udp_t *udp, const char *group, const char *iface)
{
    return loom__udp_member(udp, group, NULL, iface, false);
}

int loom_udp_join_source(loom_udp_t *udp, const char *group, const char *source, const char *iface)
{
    if (source == NULL)
        return LOOM_EINVAL;
    return loom__udp_member(udp, group, source, iface, true);
}

int loom_udp_leave_source(loom_udp_t *udp, const char *group, const char *source, const char *iface)
{
    if (source == NULL)
        return LOOM_EINVAL;
    return loom__udp_member(udp, group, source, iface, false);
}

static int loom__udp_opt(loom_udp_t *u, int v4level, int v4name, int v6level, int v6name, int v)
{
    if (u == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&u->h))
        return LOOM_ECLOSED;
    if (u->h.flags & LOOM__U_V6)
        return loom__setopt(u->io.bio.fd, v6level, v6name, v);
    return loom__setopt(u->io.bio.fd, v4level, v4name, v);
}

int loom_udp_set_broadcast(loom_udp_t *udp, bool on)
{
    return loom__udp_opt(udp, SOL_SOCKET, SO_BROADCAST, SOL_SOCKET, SO_BROADCAST, on);
}

int loom_udp_set_ttl(loom_udp_t *udp, int ttl)
{
    if (ttl < 1 || ttl > 255)
        return LOOM_EINVAL;
    return loom__udp_opt(udp, IPPROTO_IP, IP_TTL, IPPROTO_IPV6, IPV6_UNICAST_HOPS, ttl);
}

int loom_udp_set_multicast_ttl(loom_udp_t *udp, int ttl)
{
    if (ttl < 0 || ttl > 255)
        return LOOM_EINVAL;
    return loom__udp_opt(udp, IPPROTO_IP, IP_MULTICAST_TTL, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, ttl);
}

int loom_udp_set_multicast_loop(loom_udp_t *udp, bool on)
{
    return loom__udp_opt(udp, IPPROTO_IP, IP_MULTICAST_LOOP, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, on);
}

int loom_udp_set_multicast_if(loom_udp_t *udp, const char *iface)
{
    if (udp == NULL || iface == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&udp->h))
        return LOOM_ECLOSED;
    return loom__udp_mcast_if(udp->io.bio.fd, (udp->h.flags & LOOM__U_V6) != 0, iface);
}

/* --- Accessors --------------------------------------------------------------------- */

int loom_udp_local_addr(const loom_udp_t *udp, struct sockaddr *addr, socklen_t *len)
{
    if (udp == NULL || addr == NULL || len == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&udp->h))
        return LOOM_ECLOSED;
    return getsockname(udp->io.bio.fd, addr, len) == 0 ? 0 : loom__err(errno);
}

int loom_udp_port(const loom_udp_t *udp)
{
    loom__udp_addr a;
    socklen_t len = sizeof a;
    int r = loom_udp_local_addr(udp, &a.sa, &len);
    if (r < 0)
        return r;
    return ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in4.sin_port);
}

int loom_udp_fd(const loom_udp_t *udp)
{
    if (udp == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&udp->h))
        return LOOM_ECLOSED;
    return udp->io.bio.fd;
}

int loom_udp_stats(const loom_udp_t *udp, loom_udp_stats_t *out)
{
    if (udp == NULL || out == NULL)
        return LOOM_EINVAL;
    if (loom__handle_closing(&udp->h))
        return LOOM_ECLOSED;
    *out = udp->st;
    out->recv_dropped = udp->ovfl;
#ifdef SO_MEMINFO
    /* Up to date even when no datagram has carried the count since. */
    uint32_t mem[SK_MEMINFO_VARS];
    socklen_t len = sizeof mem;
    if (getsockopt(udp->io.bio.fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
        len > SK_MEMINFO_DROPS * sizeof(uint32_t) && mem[SK_MEMINFO_DROPS] > udp->ovfl)
        out->recv_dropped = mem[SK_MEMINFO_DROPS];
#endif
    out->queued_bytes = udp->qbytes;
    return 0;
}

loom_loop_t *loom_udp_loop(const loom_udp_t *udp)
{
    return udp ? udp->h.loop : NULL;
}

void *loom_udp_data(const loom_udp_t *udp)
{
    return udp ? udp->h.data : NULL;
}

void loom_udp_set_data(loom_udp_t *udp, void *data)
{
    if (udp)
        udp->h.data = data;
}
