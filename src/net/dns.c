/* net/dns.c - asynchronous DNS on c-ares, driven by the loop.
 *
 * Shape. A loop's DNS state (loop->dns) holds a few c-ares channels: queries
 * with the same timeout, tries and servers share one, so a program that
 * never overrides them has exactly one. A channel tells us through its
 * socket-state callback which fds it wants watched; each such fd gets an
 * internal loom__io watcher (a dns_sock). While a channel has requests in
 * flight it keeps one timer armed at ares_timeout(), so retries and timeouts
 * happen without any thread. Every entry into c-ares (a watcher, the timer,
 * a new request) ends with channel_update(), which re-arms or drops that
 * timer.
 *
 * Lifetimes. A query is a loom handle: live and keeping the loop alive from
 * loom_dns_lookup() until its outcome has been delivered or it is cancelled;
 * then it is closed and the loop frees it at the end of the iteration. c-ares
 * may still hold a pointer to a cancelled query (c-ares 1.18 cannot cancel
 * one request), so the memory goes only when both the loop and c-ares are
 * done with it (query_maybe_free). When a channel has nothing in flight but
 * cancelled requests, it cancels them all at once with ares_cancel(), so
 * that a cancelled query never keeps a timer or a socket busy.
 *
 * Re-entrancy. User callbacks run from inside c-ares callbacks, which run
 * inside ares_process_fd(). They may start or cancel queries on any channel.
 * ch->processing counts the c-ares calls in progress on a channel; nothing
 * that could free the channel or call ares_cancel() on it runs while it is
 * non-zero: the outermost caller does that work in channel_update() once
 * c-ares has returned. Results that c-ares produces synchronously (numeric
 * hosts, /etc/hosts hits, early failures) are stashed in the query and
 * delivered from the loop's pending phase, so no callback runs before
 * loom_dns_lookup() returns.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <net/if.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/dns.h"
#include "net/net_internal.h"

#define DNS_HOST_MAX      255 /* longest name accepted, as in DNS itself */
#define DNS_IDLE_CHANNELS 4   /* idle non-default channels kept for reuse */
#define DNS_STACK_ADDRS   8   /* answers up to this size need no malloc */

typedef struct dns_state dns_state;
typedef struct dns_channel dns_channel;

/* One socket c-ares asked us to watch. An internal handle, so its memory
 * outlives the iteration in which c-ares closed the socket: the backend may
 * still hold an event for it. */
typedef struct dns_sock {
    loom__handle h;
    loom__queue node; /* channel->socks */
    dns_channel *ch;
    loom__io w;
} dns_sock;

struct dns_channel {
    loom__queue node; /* state->channels */
    dns_state *st;
    ares_channel ares;
    loom_timer_t *timer; /* armed while inflight > 0, closed otherwise */
    loom__queue socks;
    unsigned inflight;   /* requests c-ares holds a pointer for */
    unsigned orphans;    /* of those, cancelled ones */
    unsigned processing; /* c-ares calls in progress on this channel */
    uint64_t idle_since; /* loop time it last became idle, for reuse order */
    /* The parent's, after loom_loop_fork() in a child: its sockets are
     * shared with the parent, so it goes as soon as c-ares is not running
     * on it, and its queries end with LOOM_ECANCELED. */
    bool stale;
    /* The configuration this channel was made for. */
    unsigned timeout_ms, tries;
    char *servers; /* NULL: resolv.conf's */
};

struct dns_state {
    loom_loop_t *loop;
    loom__queue channels;
    loom__queue open; /* queries whose outcome is not delivered yet */
    unsigned nchannels;
    bool destroying; /* loop free: c-ares callbacks deliver nothing */
};

enum { Q_LOOKUP, Q_REVERSE };

/* What a query holds for deferred delivery (q->stash). */
enum { STASH_NONE, STASH_ARES, STASH_NUMERIC, STASH_ERROR };

struct loom_dns_query {
    loom__handle h; /* h.data is opts->data */
    loom__queue node;
    loom__pending pending;
    dns_channel *ch; /* NULL for numeric lookups */
    union {
        loom_dns_cb lookup;
        loom_dns_reverse_cb reverse;
    } cb;
    loom_event_cb on_event;
    uint8_t kind;
    uint8_t stash;
    int family;
    bool starting;            /* inside loom_dns_lookup()/loom_dns_reverse() */
    bool ended;               /* delivered, being delivered, or cancelled */
    bool in_ares;             /* c-ares holds a pointer to it */
    bool loop_done;           /* the loop has run its free_fn */
    bool localhost;           /* asked c-ares for both families, see loom_dns_lookup() */
    int status;               /* stashed c-ares status, or loom code for STASH_ERROR */
    const char *errmsg;       /* STASH_ERROR: static message */
    struct ares_addrinfo *ai; /* STASH_ARES, lookup */
    char *name;               /* STASH_ARES, reverse */
    loom_dns_addr_t num;      /* STASH_NUMERIC */
    char host[DNS_HOST_MAX + 1];
};

static void channel_update(dns_channel *ch);
static void channel_destroy(dns_channel *ch);
static bool parse_numeric(const char *host, loom_dns_addr_t *a);
static void dns_loop_free(loom_loop_t *loop);
static void dns_loop_fork(loom_loop_t *loop);

/* --- c-ares library set-up ------------------------------------------------- */

static pthread_once_t dns_once = PTHREAD_ONCE_INIT;
static int dns_lib_status = ARES_SUCCESS;

/* ares_library_init() is reference-counted but not thread-safe in 1.18, and
 * loops may be created on many threads: initialise once per process and
 * never clean up (on Unix it holds no resources). */
static void dns_lib_init(void)
{
    dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* Maps a c-ares status to a loom code. */
static int dns_code(int status)
{
    switch (status) {
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
        return LOOM_ENOTFOUND;
    case ARES_ETIMEOUT:
        return LOOM_ETIMEDOUT;
    case ARES_ECONNREFUSED:
        return LOOM_ECONNREFUSED;
    case ARES_ENOMEM:
        return LOOM_ENOMEM;
    case ARES_ECANCELLED:
    case ARES_EDESTRUCTION:
        return LOOM_ECANCELED;
    default:
        return LOOM_EDNS;
    }
}

/* --- Watchers ---------------------------------------------------------------- */

static void sock_free(loom__handle *h)
{
    free(LOOM__CONTAINER_OF(h, dns_sock, h));
}

static void sock_close(dns_sock *s)
{
    loom__io_deinit(s->h.loop, &s->w);
    loom__queue_remove(&s->node);
    loom__handle_close(&s->h);
}

static void on_sock_io(loom__io *w, unsigned events)
{
    dns_sock *s = LOOM__CONTAINER_OF(w, dns_sock, w);
    dns_channel *ch = s->ch;
    int fd = w->bio.fd;
    unsigned want = w->bio.events;
    /* A hang-up or error is reported on whatever c-ares waits for, so that
     * its read or write notices it. */
    if (events & LOOM_HUP)
        events |= want;
    ares_socket_t rfd = (events & LOOM_READABLE) ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = (events & LOOM_WRITABLE) ? fd : ARES_SOCKET_BAD;
    ch->processing++;
    ares_process_fd(ch->ares, rfd, wfd);
    ch->processing--;
    channel_update(ch);
}

/* c-ares's ARES_OPT_SOCK_STATE_CB: start, change or stop watching fd. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_channel *ch = data;
    loom_loop_t *loop = ch->st->loop;
    unsigned events = (readable ? LOOM_READABLE : 0) | (writable ? LOOM_WRITABLE : 0);
    dns_sock *s = NULL;
    /* O(sockets of this channel): c-ares keeps one or two per server. */
    for (loom__queue *n = ch->socks.next; n != &ch->socks; n = n->next) {
        dns_sock *c = LOOM__CONTAINER_OF(n, dns_sock, node);
        if (c->w.bio.fd == fd) {
            s = c;
            break;
        }
    }
    if (s == NULL) {
        if (events == 0)
            return;
        s = calloc(1, sizeof *s);
        if (s == NULL)
            goto fail;
        if (loom__io_init(loop, &s->w, fd, on_sock_io) < 0) {
            free(s);
            goto fail;
        }
        loom__handle_init(loop, &s->h, LOOM__T_DNS, sock_free, true);
        s->ch = ch;
        loom__queue_insert_tail(&ch->socks, &s->node);
    }
    if (events == 0) {
        sock_close(s);
        return;
    }
    int r = loom__io_set(loop, &s->w, events);
    if (r < 0)
        loom_log(loop, LOOM_LOG_WARNING, "dns: cannot watch fd %d: %s", (int)fd, loom_strerror(r));
    return;

fail:
    /* Nothing to report to: the requests on this socket end at their
     * timeout instead. */
    loom_log(loop, LOOM_LOG_WARNING, "dns: out of memory watching fd %d", (int)fd);
}

/* --- Channels ------------------------------------------------------------------ */

static void on_channel_timer(loom_timer_t *timer, void *data)
{
    dns_channel *ch = data;
    (void)timer;
    ch->processing++;
    ares_process_fd(ch->ares, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    ch->processing--;
    channel_update(ch);
}

/* Brings the channel's timer in line with c-ares after any call into it,
 * and drops requests nobody waits for any more. */
static void channel_update(dns_channel *ch)
{
    loom_loop_t *loop = ch->st->loop;
    if (ch->processing || ch->st->destroying)
        return;
    if (ch->stale) {
        channel_destroy(ch);
        return;
    }
    /* Only cancelled requests left: end them now. ares_cancel() runs their
     * callbacks, which free them. Bounded, in case c-ares starts new work
     * from inside the cancellation. */
    for (int i = 0; i < 3 && ch->inflight > 0 && ch->inflight == ch->orphans; i++) {
        ch->processing++;
        ares_cancel(ch->ares);
        ch->processing--;
    }
    if (ch->inflight == 0) {
        if (ch->timer) {
            loom_timer_close(ch->timer);
            ch->timer = NULL;
        }
        ch->idle_since = loop->now;
        return;
    }
    struct timeval tv;
    if (ares_timeout(ch->ares, NULL, &tv) == NULL) {
        if (ch->timer)
            loom_timer_stop(ch->timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u;
    if (ch->timer == NULL) {
        /* loom's own timer: not a live object of the application's, and the
         * queries keep the loop alive, not their timer. */
        int r = loom__net_timer_new(loop, &ch->timer, on_channel_timer, ch);
        if (r < 0) {
            ch->timer = NULL;
            loom_log(loop, LOOM_LOG_WARNING, "dns: no timer for the resolver: %s",
                     loom_strerror(r));
            return;
        }
    }
    loom_timer_start(ch->timer, ms, 0);
}

/* Frees a channel. Not while c-ares runs on it (ch->processing == 0). Any
 * request still in flight gets its callback with ARES_EDESTRUCTION. */
static void channel_destroy(dns_channel *ch)
{
    ch->processing++;
    ares_destroy(ch->ares);
    ch->processing--;
    /* ares_destroy() reports every socket closed; this is a safety net. */
    while (!loom__queue_empty(&ch->socks))
        sock_close(LOOM__CONTAINER_OF(ch->socks.next, dns_sock, node));
    if (ch->timer)
        loom_timer_close(ch->timer);
    loom__queue_remove(&ch->node);
    ch->st->nchannels--;
    free(ch->servers);
    free(ch);
}

static bool channel_matches(const dns_channel *ch, const loom_dns_opts *o)
{
    if (ch->stale)
        return false;
    if (ch->timeout_ms != o->timeout_ms || ch->tries != o->tries)
        return false;
    if (ch->servers == NULL || o->servers == NULL)
        return ch->servers == NULL && o->servers == NULL;
    return strcmp(ch->servers, o->servers) == 0;
}

/* Makes room for a new channel: frees the least recently used idle channels
 * until fewer than DNS_IDLE_CHANNELS remain. O(channels), which stays small. */
static void channel_gc(dns_state *st)
{
    for (;;) {
        dns_channel *lru = NULL;
        unsigned idle = 0;
        for (loom__queue *n = st->channels.next; n != &st->channels; n = n->next) {
            dns_channel *c = LOOM__CONTAINER_OF(n, dns_channel, node);
            if (c->inflight || c->processing || c->stale)
                continue;
            idle++;
            if (lru == NULL || c->idle_since < lru->idle_since)
                lru = c;
        }
        if (idle < DNS_IDLE_CHANNELS)
            return;
        channel_destroy(lru);
    }
}

/* Finds or creates the channel for opts. Returns it, or NULL with *err. */
static dns_channel *channel_get(dns_state *st, const loom_dns_opts *o, int *err)
{
    for (loom__queue *n = st->channels.next; n != &st->channels; n = n->next) {
        dns_channel *c = LOOM__CONTAINER_OF(n, dns_channel, node);
        if (channel_matches(c, o))
            return c;
    }

    int r;
    dns_channel *ch = calloc(1, sizeof *ch);
    if (ch == NULL) {
        r = LOOM_ENOMEM;
        goto fail_alloc;
    }
    ch->st = st;
    ch->timeout_ms = o->timeout_ms;
    ch->tries = o->tries;
    loom__queue_init(&ch->socks);
    if (o->servers) {
        ch->servers = strdup(o->servers);
        if (ch->servers == NULL) {
            r = LOOM_ENOMEM;
            goto fail_servers;
        }
    }

    /* "f" then "b": /etc/hosts first, then DNS, whatever resolv.conf says. */
    static char lookups[] = "fb";
    struct ares_options ao;
    memset(&ao, 0, sizeof ao);
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS;
    ao.sock_state_cb = on_sock_state;
    ao.sock_state_cb_data = ch;
    ao.lookups = lookups;
    if (o->timeout_ms) {
        ao.timeout = (int)(o->timeout_ms > INT32_MAX ? INT32_MAX : o->timeout_ms);
        mask |= ARES_OPT_TIMEOUTMS;
    }
    if (o->tries) {
        ao.tries = (int)(o->tries > 100 ? 100 : o->tries);
        mask |= ARES_OPT_TRIES;
    }
    int s = ares_init_options(&ch->ares, &ao, mask);
    if (s != ARES_SUCCESS) {
        r = s == ARES_ENOMEM ? LOOM_ENOMEM : LOOM_EDNS;
        loom_log(st->loop, LOOM_LOG_WARNING, "dns: resolver set-up failed: %s", ares_strerror(s));
        goto fail_init;
    }
    if (o->servers) {
        s = ares_set_servers_ports_csv(ch->ares, o->servers);
        if (s != ARES_SUCCESS) {
            r = s == ARES_ENOMEM ? LOOM_ENOMEM : LOOM_EINVAL;
            goto fail_set;
        }
    }
    channel_gc(st);
    ch->idle_since = st->loop->now;
    loom__queue_insert_tail(&st->channels, &ch->node);
    st->nchannels++;
    return ch;

fail_set:
    ares_destroy(ch->ares);
fail_init:
    free(ch->servers);
fail_servers:
    free(ch);
fail_alloc:
    *err = r;
    return NULL;
}

/* --- Loop state -------------------------------------------------------------- */

/* The loop's DNS state, created on first use. Returns 0, LOOM_ENOMEM, or
 * LOOM_EDNS when c-ares could not be initialised. */
static int state_get(loom_loop_t *loop, dns_state **out)
{
    if (loop->dns) {
        *out = loop->dns;
        return 0;
    }
    pthread_once(&dns_once, dns_lib_init);
    if (dns_lib_status != ARES_SUCCESS)
        return LOOM_EDNS;
    dns_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return LOOM_ENOMEM;
    st->loop = loop;
    loom__queue_init(&st->channels);
    loom__queue_init(&st->open);
    loop->dns = st;
    loop->dns_free = dns_loop_free;
    loop->dns_fork = dns_loop_fork;
    *out = st;
    return 0;
}

/* --- Queries ------------------------------------------------------------------ */

static void query_maybe_free(loom_dns_query_t *q)
{
    if (q->loop_done && !q->in_ares)
        free(q);
}

static void query_free_fn(loom__handle *h)
{
    loom_dns_query_t *q = LOOM__CONTAINER_OF(h, loom_dns_query_t, h);
    q->loop_done = true;
    query_maybe_free(q);
}

static void query_drop_stash(loom_dns_query_t *q)
{
    loom__pending_cancel(&q->pending);
    if (q->ai) {
        ares_freeaddrinfo(q->ai);
        q->ai = NULL;
    }
    free(q->name);
    q->name = NULL;
    q->stash = STASH_NONE;
}

/* The query's outcome is settled: it stops being pending and live. Its
 * callback, if any, runs after this and before the loop frees it. */
static void query_end(loom_dns_query_t *q)
{
    q->ended = true;
    loom__queue_remove(&q->node);
    q->h.loop->stats.dns_pending--;
    loom__handle_close(&q->h);
}

/* The one failure outcome: a dns error event whose message names the host
 * ("dns lookup of nohost.invalid failed: Domain name not found"), built on
 * the stack (host <= 255 bytes: bounded). */
static void query_fail(loom_dns_query_t *q, int code, const char *msg)
{
    loom_loop_t *loop = q->h.loop;
    char text[DNS_HOST_MAX + 128];
    snprintf(text, sizeof text, "%sdns lookup of %s failed: %s",
             q->kind == Q_REVERSE ? "reverse " : "", q->host, msg ? msg : loom_strerror(code));
    query_end(q);
    loom__event_emit(loop, q->on_event, q->h.data, LOOM_EV_DNS_ERROR, code, text, q);
}

static void query_answer(loom_dns_query_t *q, const loom_dns_addr_t *addrs, size_t count)
{
    loom_loop_t *loop = q->h.loop;
    loom_dns_result_t res = {
        .host = q->host,
        .count = count,
        .addrs = addrs,
        .addr = addrs[0].addr,
        .family = addrs[0].family,
    };
    query_end(q);
    loom__op_scope s;
    loom__op_enter(loop, &s, q->on_event, q->h.data, q);
    q->cb.lookup(q, &res, q->h.data);
    loom__op_leave(loop, &s);
}

/* Fills a from a socket address; returns false for other families. */
static bool addr_fill(loom_dns_addr_t *a, const struct sockaddr *sa, size_t len)
{
    memset(a, 0, sizeof *a);
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(&a->sa.in4, sa, sizeof a->sa.in4);
        a->sa.in4.sin_port = 0;
        a->salen = sizeof a->sa.in4;
        inet_ntop(AF_INET, &a->sa.in4.sin_addr, a->addr, sizeof a->addr);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        memcpy(&a->sa.in6, sa, sizeof a->sa.in6);
        a->sa.in6.sin6_port = 0;
        a->salen = sizeof a->sa.in6;
        inet_ntop(AF_INET6, &a->sa.in6.sin6_addr, a->addr, sizeof a->addr);
    } else {
        return false;
    }
    a->family = sa->sa_family;
    return true;
}

/* Delivers a lookup's c-ares outcome; consumes ai. */
static void lookup_deliver(loom_dns_query_t *q, int status, struct ares_addrinfo *ai)
{
    if (status != ARES_SUCCESS) {
        if (ai)
            ares_freeaddrinfo(ai);
        query_fail(q, dns_code(status), ares_strerror(status));
        return;
    }
    size_t n = 0;
    for (struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL; nd; nd = nd->ai_next)
        n++;
    loom_dns_addr_t stack[DNS_STACK_ADDRS];
    loom_dns_addr_t *addrs = n <= DNS_STACK_ADDRS ? stack : malloc(n * sizeof *addrs);
    if (addrs == NULL) {
        ares_freeaddrinfo(ai);
        query_fail(q, LOOM_ENOMEM, NULL);
        return;
    }
    size_t count = 0;
    for (struct ares_addrinfo_node *nd = ai ? ai->nodes : NULL; nd; nd = nd->ai_next)
        if (nd->ai_addr && (q->family == AF_UNSPEC || nd->ai_family == q->family) &&
            addr_fill(&addrs[count], nd->ai_addr, nd->ai_addrlen))
            count++;
    if (ai)
        ares_freeaddrinfo(ai);
    if (count == 0 && q->localhost) {
        /* /etc/hosts has localhost, but not of this family: RFC 6761's
         * loopback answer, as c-ares itself would give. */
        parse_numeric(q->family == AF_INET6 ? "::1" : "127.0.0.1", &addrs[0]);
        count = 1;
    }
    if (count == 0)
        query_fail(q, LOOM_ENOTFOUND, ares_strerror(ARES_ENODATA));
    else
        query_answer(q, addrs, count);
    if (addrs != stack)
        free(addrs);
}

static void reverse_deliver(loom_dns_query_t *q, int status, const char *name)
{
    if (status != ARES_SUCCESS || name == NULL) {
        if (status == ARES_SUCCESS)
            status = ARES_ENOTFOUND;
        query_fail(q, dns_code(status), ares_strerror(status));
        return;
    }
    loom_loop_t *loop = q->h.loop;
    query_end(q);
    loom__op_scope s;
    loom__op_enter(loop, &s, q->on_event, q->h.data, q);
    q->cb.reverse(q, name, q->h.data);
    loom__op_leave(loop, &s);
}

/* The pending phase: deliver what was stashed while the API call ran. */
static void query_on_pending(loom__pending *p)
{
    loom_dns_query_t *q = LOOM__CONTAINER_OF(p, loom_dns_query_t, pending);
    int stash = q->stash;
    q->stash = STASH_NONE;
    switch (stash) {
    case STASH_NUMERIC:
        query_answer(q, &q->num, 1);
        break;
    case STASH_ERROR:
        query_fail(q, q->status, q->errmsg);
        break;
    case STASH_ARES:
        if (q->kind == Q_LOOKUP) {
            struct ares_addrinfo *ai = q->ai;
            q->ai = NULL;
            lookup_deliver(q, q->status, ai);
        } else {
            char *name = q->name;
            q->name = NULL;
            reverse_deliver(q, q->status, name);
            free(name);
        }
        break;
    default:
        break;
    }
}

static void query_stash(loom_dns_query_t *q, int stash)
{
    q->stash = (uint8_t)stash;
    loom__pending_queue(q->h.loop, &q->pending);
}

/* Common part of every c-ares completion. Returns true if the caller should
 * go on to deliver the outcome. */
static bool query_ares_done(loom_dns_query_t *q)
{
    dns_channel *ch = q->ch;
    q->in_ares = false;
    ch->inflight--;
    if (q->ended) {
        ch->orphans--;
        return false;
    }
    if (ch->stale) {
        /* Asked in the parent: the answer would go to the parent. */
        q->status = LOOM_ECANCELED;
        q->errmsg = "query in flight at fork()";
        query_stash(q, STASH_ERROR);
        return false;
    }
    return !ch->st->destroying;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
    loom_dns_query_t *q = arg;
    (void)timeouts;
    if (!query_ares_done(q)) {
        if (ai)
            ares_freeaddrinfo(ai);
        query_maybe_free(q);
        return;
    }
    if (q->starting) {
        q->status = status;
        q->ai = ai;
        query_stash(q, STASH_ARES);
        return;
    }
    lookup_deliver(q, status, ai);
}

static void on_hostent(void *arg, int status, int timeouts, struct hostent *he)
{
    loom_dns_query_t *q = arg;
    (void)timeouts;
    if (!query_ares_done(q)) {
        query_maybe_free(q);
        return;
    }
    const char *name = status == ARES_SUCCESS && he ? he->h_name : NULL;
    if (q->starting) {
        q->status = status;
        if (name) {
            q->name = strdup(name);
            if (q->name == NULL) {
                q->status = LOOM_ENOMEM;
                q->errmsg = NULL;
                query_stash(q, STASH_ERROR);
                return;
            }
        }
        query_stash(q, STASH_ARES);
        return;
    }
    reverse_deliver(q, status, name);
}

/* Parses a numeric IPv4 or IPv6 address, with an optional IPv6 scope
 * ("fe80::1%eth0" or "%2"). Returns true and fills a if host is one. */
static bool parse_numeric(const char *host, loom_dns_addr_t *a)
{
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, host, &a->sa.in4.sin_addr) == 1) {
        a->family = AF_INET;
        a->sa.in4.sin_family = AF_INET;
        a->salen = sizeof a->sa.in4;
        inet_ntop(AF_INET, &a->sa.in4.sin_addr, a->addr, sizeof a->addr);
        return true;
    }
    char buf[LOOM_DNS_ADDRSTRLEN];
    const char *pct = strchr(host, '%');
    size_t len = pct ? (size_t)(pct - host) : strlen(host);
    if (len >= sizeof buf)
        return false;
    memcpy(buf, host, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET6, buf, &a->sa.in6.sin6_addr) != 1)
        return false;
    if (pct) {
        char *end;
        unsigned long id = strtoul(pct + 1, &end, 10);
        if (pct[1] == '\0')
            return false;
        if (*end != '\0')
            id = if_nametoindex(pct + 1);
        if (id == 0 || id > UINT32_MAX)
            return false;
        a->sa.in6.sin6_scope_id = (uint32_t)id;
    }
    a->family = AF_INET6;
    a->sa.in6.sin6_family = AF_INET6;
    a->salen = sizeof a->sa.in6;
    inet_ntop(AF_INET6, &a->sa.in6.sin6_addr, a->addr, sizeof a->addr);
    return true;
}

/* Allocates a started query; it counts as live and pending from here. */
static loom_dns_query_t *query_new(dns_state *st, int kind, const char *host, size_t len,
                                   const loom_dns_opts *o)
{
    loom_dns_query_t *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    loom__handle_init(st->loop, &q->h, LOOM__T_DNS, query_free_fn, false);
    loom__handle_start(&q->h);
    q->h.data = o->data;
    q->on_event = o->on_event;
    q->kind = (uint8_t)kind;
    q->pending.fn = query_on_pending;
    memcpy(q->host, host, len + 1);
    loom__queue_insert_tail(&st->open, &q->node);
    st->loop->stats.dns_pending++;
    return q;
}

/* A query about to be handed to c-ares on the channel for `o`. Returns it,
 * or NULL with *err. */
static loom_dns_query_t *query_begin(dns_state *st, int kind, const char *host, size_t len,
                                     const loom_dns_opts *o, int *err)
{
    dns_channel *ch = channel_get(st, o, err);
    if (ch == NULL)
        return NULL;
    loom_dns_query_t *q = query_new(st, kind, host, len, o);
    if (q == NULL) {
        *err = LOOM_ENOMEM;
        return NULL;
    }
    q->ch = ch;
    q->starting = true; /* c-ares may answer at once: stash it, see on_addrinfo() */
    q->in_ares = true;
    ch->inflight++;
    return q;
}

/* c-ares has the query: from now on its outcome is delivered directly. */
static int query_started(loom_dns_query_t *q, loom_dns_query_t **out)
{
    q->starting = false;
    if (out)
        *out = q;
    channel_update(q->ch);
    return 0;
}

static const loom_dns_opts dns_default_opts;

/* Does the hosts file have `name` (of `family`, or either)? One synchronous
 * read of the file, as c-ares's own "f" lookup does. */
static bool dns_in_hosts(ares_channel ch, const char *name, int family)
{
    int fams[2] = {family == AF_UNSPEC ? AF_INET : family, family == AF_UNSPEC ? AF_INET6 : 0};
    for (int i = 0; i < 2 && fams[i]; i++) {
        struct hostent *he = NULL;
        if (ares_gethostbyname_file(ch, name, fams[i], &he) == ARES_SUCCESS) {
            ares_free_hostent(he);
            return true;
        }
    }
    return false;
}

int loom_dns_lookup(loom_loop_t *loop, const char *host, int family, loom_dns_cb cb,
                    const loom_dns_opts *opts, loom_dns_query_t **out)
{
    if (loop == NULL || host == NULL || host[0] == '\0' || cb == NULL)
        return LOOM_EINVAL;
    if (family != LOOM_DNS_UNSPEC && family != LOOM_DNS_INET && family != LOOM_DNS_INET6)
        return LOOM_EINVAL;
    size_t len = strlen(host);
    if (len > DNS_HOST_MAX)
        return LOOM_ENAMETOOLONG;
    if (opts == NULL)
        opts = &dns_default_opts;
    if (loop->freeing)
        return LOOM_ECLOSED;
    dns_state *st;
    int r = state_get(loop, &st);
    if (r < 0)
        return r;

    loom_dns_addr_t num;
    if (parse_numeric(host, &num)) {
        /* No query: the answer is the address itself, on the next
         * iteration. */
        loom_dns_query_t *q = query_new(st, Q_LOOKUP, host, len, opts);
        if (q == NULL)
            return LOOM_ENOMEM;
        q->cb.lookup = cb;
        q->family = family;
        if (family == LOOM_DNS_UNSPEC || family == num.family) {
            q->num = num;
            query_stash(q, STASH_NUMERIC);
        } else {
            q->status = LOOM_ENOTFOUND;
            q->errmsg = "numeric address of another family than requested";
            query_stash(q, STASH_ERROR);
        }
        if (out)
            *out = q;
        return 0;
    }

    loom_dns_query_t *q = query_begin(st, Q_LOOKUP, host, len, opts, &r);
    if (q == NULL)
        return r;
    q->cb.lookup = cb;
    q->family = family;
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    /* An absolute name (one trailing dot: "localhost.", "example.com.") is
     * the same name. c-ares asks DNS for it as it is (no search domains),
     * but /etc/hosts and RFC 6761's localhost know names without the dot,
     * and c-ares 1.18 compares them as given: those are looked up without
     * it, so "localhost." answers as "localhost" does. */
    char bare[256];
    const char *name = host;
    size_t hl = strlen(host);
    if (hl >= 2 && hl < sizeof bare && host[hl - 1] == '.' && host[hl - 2] != '.') {
        memcpy(bare, host, hl - 1);
        bare[hl - 1] = '\0';
        if (strcasecmp(bare, "localhost") == 0 || dns_in_hosts(q->ch->ares, bare, family))
            name = strcasecmp(bare, "localhost") == 0 ? "localhost" : bare;
    }
    if (strcmp(name, "localhost") == 0) {
        /* c-ares 1.18 leaks the name when it falls back to its built-in
         * localhost answer, which it does whenever /etc/hosts has no
         * localhost entry of the family asked for. Asking for both
         * families finds the usual IPv4-only entry; lookup_deliver()
         * filters and supplies the loopback address itself. */
        q->localhost = true;
        hints.ai_family = AF_UNSPEC;
    }
    ares_getaddrinfo(q->ch->ares, name, NULL, &hints, on_addrinfo, q);
    return query_started(q, out);
}

int loom_dns_reverse(loom_loop_t *loop, const char *addr, loom_dns_reverse_cb cb,
                     const loom_dns_opts *opts, loom_dns_query_t **out)
{
    loom_dns_addr_t a;
    if (loop == NULL || addr == NULL || cb == NULL || strlen(addr) > DNS_HOST_MAX ||
        !parse_numeric(addr, &a))
        return LOOM_EINVAL;
    if (opts == NULL)
        opts = &dns_default_opts;
    if (loop->freeing)
        return LOOM_ECLOSED;
    dns_state *st;
    int r = state_get(loop, &st);
    if (r < 0)
        return r;
    loom_dns_query_t *q = query_begin(st, Q_REVERSE, addr, strlen(addr), opts, &r);
    if (q == NULL)
        return r;
    q->cb.reverse = cb;
    q->family = a.family;
    if (a.family == AF_INET)
        ares_gethostbyaddr(q->ch->ares, &a.sa.in4.sin_addr, sizeof a.sa.in4.sin_addr, AF_INET,
                           on_hostent, q);
    else
        ares_gethostbyaddr(q->ch->ares, &a.sa.in6.sin6_addr, sizeof a.sa.in6.sin6_addr, AF_INET6,
                           on_hostent, q);
    return query_started(q, out);
}

int loom_dns_cancel(loom_dns_query_t *q)
{
    if (q == NULL)
        return LOOM_EINVAL;
    if (q->ended)
        return LOOM_ECLOSED;
    query_drop_stash(q);
    query_end(q);
    if (q->in_ares) {
        dns_channel *ch = q->ch;
        ch->orphans++;
        channel_update(ch);
    }
    return 0;
}

const char *loom_dns_query_host(const loom_dns_query_t *q)
{
    return q->host;
}

void *loom_dns_query_data(const loom_dns_query_t *q)
{
    return q->h.data;
}

loom_loop_t *loom_dns_query_loop(const loom_dns_query_t *q)
{
    return q ? q->h.loop : NULL;
}

/* loop->dns_fork: loom_loop_fork() in a child, after the backend was made
 * again. Every channel is the parent's too (its sockets, its queries): each
 * goes now, or when c-ares returns if the fork happened inside one of its
 * callbacks. Queries in flight end with a dns error event, LOOM_ECANCELED,
 * from the pending phase; new lookups make new channels. */
static void dns_loop_fork(loom_loop_t *loop)
{
    dns_state *st = loop->dns;
    loom__queue *n = st->channels.next;
    while (n != &st->channels) {
        dns_channel *ch = LOOM__CONTAINER_OF(n, dns_channel, node);
        n = n->next;
        ch->stale = true;
        if (!ch->processing)
            channel_destroy(ch);
    }
}

/* loop->dns_free: runs at loom_loop_free(), before the loop drains its
 * closing list and destroys the backend and the timer slab. Queries still
 * open are closed without callbacks. */
static void dns_loop_free(loom_loop_t *loop)
{
    dns_state *st = loop->dns;
    if (st == NULL)
        return;
    st->destroying = true;
    while (!loom__queue_empty(&st->channels))
        channel_destroy(LOOM__CONTAINER_OF(st->channels.next, dns_channel, node));
    /* c-ares has let go of every query now; close the open ones. */
    while (!loom__queue_empty(&st->open)) {
        loom_dns_query_t *q = LOOM__CONTAINER_OF(st->open.next, loom_dns_query_t, node);
        query_drop_stash(q);
        query_end(q);
    }
    free(st);
    loop->dns = NULL;
    loop->dns_free = NULL;
    loop->dns_fork = NULL;
}
