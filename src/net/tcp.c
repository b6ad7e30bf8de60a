/* net/tcp.c - connecting (Happy Eyeballs over loom's DNS), servers and
 * accepting, Unix-domain sockets, and socket addresses.
 *
 * A client socket exists from loom_tcp_connect() on; while it connects it
 * points at a connector (loom__connect) that holds the addresses, up to four
 * attempts in flight, the stagger and deadline timers and the DNS query.
 * The connector is a handle of its own (internal, not counted as live), so
 * its watchers' memory stays valid until the end of the iteration in which
 * it was closed, as a backend's batch may still name them.
 *
 * Accepting: accept4() in a loop, at most 64 connections per readiness so
 * one busy server cannot starve the others. EMFILE/ENFILE (and ENOBUFS,
 * ENOMEM) become a tcp accept error event; the server then stops watching
 * its fd and retries after 100 ms, so it neither spins nor needs a reserve
 * fd, and recovers by itself once descriptors free up.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "loom/dns.h"
#include "net/net_internal.h"
#include "net/tls_internal.h"

#define LOOM__CONN_MAX_ADDRS    16
#define LOOM__CONN_MAX_ATTEMPTS 4
#define LOOM__ACCEPT_BATCH      64
#define LOOM__ACCEPT_RETRY_MS   100
#define LOOM__ATTEMPT_DELAY_MS  250
#define LOOM__CONN_HOST_MAX     255  /* as in DNS; a Unix path is shorter */
#define LOOM__CONN_MSG          1024 /* a failed connect's message, on the stack */

/* --- Classes from options ---------------------------------------------------------- */

/* The TCP API's classes keep room for a TLS session: a plain socket may
 * become a TLS one (loom_socket_starttls()). A TLS client class holds no
 * context (each socket has its own); a server class holds the server's. */
static loom__sock_class *loom__class_tls(loom__sock_class *c, loom_tls_ctx_t *tls)
{
    c->tr_room = loom__transport_tls.state_size;
    if (tls)
        loom__class_set_tls(c, loom_tls_ctx_is_server(tls) ? tls : NULL);
    return c;
}

static socklen_t loom__parse_ip(const char *host, int port, struct sockaddr_storage *ss);

/* A client socket's own class. A TCP client (port > 0) keeps the address
 * it connected to (cls->keep_peer: 8 bytes when only IPv4 can be reached,
 * else 20) and, when `host` is a name, "host:port" in the same allocation
 * (cls->host), so that a reset names both. */
static loom__sock_class *loom__class_client(const loom_tcp_opts *o, const char *host, int port)
{
    struct sockaddr_storage ss;
    socklen_t lit = port > 0 ? loom__parse_ip(host, port, &ss) : 0;
    size_t hn = port > 0 && lit == 0 ? strlen(host) + sizeof ":65535" : 0;
    loom__sock_class *c = calloc(1, sizeof *c + hn);
    if (c == NULL)
        return NULL;
    LOOM__CLASS_FROM_OPTS(c, o);
    if (port > 0)
        c->keep_peer = o->family == AF_INET || (lit && ss.ss_family == AF_INET)
                           ? 8
                           : (uint8_t)sizeof(loom__peer_addr);
    if (hn) {
        char *h = (char *)(c + 1);
        snprintf(h, hn, "%s:%d", host, port);
        c->host = h;
    }
    return loom__class_tls(c, o->tls);
}

static loom__sock_class *loom__class_server(const loom_tcp_server_opts *o)
{
    loom__sock_class *c = calloc(1, sizeof *c);
    if (c != NULL)
        LOOM__CLASS_FROM_OPTS(c, o);
    return c ? loom__class_tls(c, o->tls) : NULL;
}

/* Makes sure the class's timeouts have their groups (a loop has room for 63
 * distinct values): a socket must not run silently without the timeouts it
 * was asked for. Returns 0, LOOM_ETOOMANY or LOOM_ENOMEM. */
static int loom__class_groups(loom_loop_t *loop, const loom__sock_class *cls)
{
    int r = loom__tgroup_get(loop, cls->read_timeout_ms);
    if (r >= 0)
        r = loom__tgroup_get(loop, cls->write_timeout_ms);
    return r < 0 ? r : 0;
}

/* --- Addresses ------------------------------------------------------------------ */

/* Parses a numeric IPv4 or IPv6 address (brackets allowed) with `port`.
 * Returns the address length, or 0 if `host` is not numeric. */
static socklen_t loom__parse_ip(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        return sizeof *in4;
    }
    char buf[INET6_ADDRSTRLEN + 2];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof buf) {
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        host = buf;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof *in6;
    }
    return 0;
}

static int loom__parse_unix(const char *path, struct sockaddr_un *un, socklen_t *len)
{
    size_t n = strlen(path);
    if (n == 0)
        return LOOM_EINVAL;
    if (n >= sizeof un->sun_path)
        return LOOM_ENAMETOOLONG;
    memset(un, 0, sizeof *un);
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, n);
    if (path[0] == '@') {
        un->sun_path[0] = '\0'; /* abstract namespace: no file */
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    } else {
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    }
    return 0;
}

int loom_sockaddr_name(const struct sockaddr *sa, socklen_t len, char *buf, size_t size, int *port)
{
    if (sa == NULL || buf == NULL || size == 0)
        return LOOM_EINVAL;
    int p = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in4->sin_addr, buf, (socklen_t)size) == NULL)
            return LOOM_ENOSPC;
        p = ntohs(in4->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)size) == NULL)
            return LOOM_ENOSPC;
        p = ntohs(in6->sin6_port);
    } else if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t off = offsetof(struct sockaddr_un, sun_path);
        size_t n = len > off ? (size_t)len - off : 0;
        if (n > 0 && un->sun_path[0] == '\0') {
            /* Abstract: shown with a leading '@', as given to loom. */
            if (n + 1 > size)
                return LOOM_ENOSPC;
            buf[0] = '@';
            memcpy(buf + 1, un->sun_path + 1, n - 1);
            buf[n] = '\0';
        } else {
            n = strnlen(un->sun_path, n);
            if (n + 1 > size)
                return LOOM_ENOSPC;
            memcpy(buf, un->sun_path, n);
            buf[n] = '\0';
        }
    } else {
        return LOOM_EAFNOSUPPORT;
    }
    if (port)
        *port = p;
    return 0;
}

static int loom__socket_addr(const loom_socket_t *s, struct sockaddr *addr, socklen_t *len,
                             bool peer)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (addr == NULL || len == NULL)
        return LOOM_EINVAL;
    /* An accepted socket's peer: the address accept returned, which
     * outlives a reset (getpeername() then fails with ENOTCONN). */
    if (peer && loom__socket_kept_peer(s))
        return loom__peer_addr_get(loom__socket_kept_peer(s), addr, len);
    if (s->io.bio.fd < 0)
        return LOOM_ENOTCONN;
    int r = peer ? getpeername(s->io.bio.fd, addr, len) : getsockname(s->io.bio.fd, addr, len);
    return r < 0 ? loom__err(errno) : 0;
}

int loom_socket_peer_addr(const loom_socket_t *s, struct sockaddr *addr, socklen_t *len)
{
    return loom__socket_addr(s, addr, len, true);
}

int loom_socket_local_addr(const loom_socket_t *s, struct sockaddr *addr, socklen_t *len)
{
    return loom__socket_addr(s, addr, len, false);
}

static int loom__socket_name(const loom_socket_t *s, char *buf, size_t size, int *port, bool peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = loom__socket_addr(s, (struct sockaddr *)&ss, &len, peer);
    if (r < 0)
        return r;
    return loom_sockaddr_name((struct sockaddr *)&ss, len, buf, size, port);
}

int loom_socket_peer_name(const loom_socket_t *s, char *buf, size_t size, int *port)
{
    return loom__socket_name(s, buf, size, port, true);
}

int loom_socket_local_name(const loom_socket_t *s, char *buf, size_t size, int *port)
{
    return loom__socket_name(s, buf, size, port, false);
}

/* --- Connecting --------------------------------------------------------------------- */

typedef struct loom__attempt {
    loom__io io;
    loom__connect *c;
    int idx; /* its address */
    bool used;
} loom__attempt;

struct loom__connect {
    loom__handle h; /* internal: frees the connector at the end of the iteration */
    loom_socket_t *s;
    loom_timer_t *stagger;  /* starts the next attempt */
    loom_timer_t *deadline; /* connect timeout */
    loom_dns_query_t *dns;
    loom__pending pend; /* starts the first attempt from the loop */
    int naddr, next, live;
    int error;     /* the last attempt's failure */
    int dns_error; /* lookup could not start: reported from the loop */
    uint32_t delay_ms;
    uint32_t timeout_ms; /* the connect timeout, for its message */
    int port;
    int family;
    bool literal; /* host is the one address itself (an IP literal or a Unix path) */
    loom__attempt att[LOOM__CONN_MAX_ATTEMPTS];
    struct sockaddr_storage addr[LOOM__CONN_MAX_ADDRS];
    socklen_t alen[LOOM__CONN_MAX_ADDRS];
    int aerr[LOOM__CONN_MAX_ADDRS];     /* each tried address's failure */
    char host[LOOM__CONN_HOST_MAX + 1]; /* as given, for messages */
};

static void loom__connect_free(loom__handle *h)
{
    free(h);
}

/* Ends the connector: closes its attempts, timers and query. */
static void loom__connect_finish(loom__connect *c)
{
    loom_socket_t *s = c->s;
    loom_loop_t *loop = s->h.loop;
    for (int i = 0; i < LOOM__CONN_MAX_ATTEMPTS; i++) {
        loom__attempt *a = &c->att[i];
        if (!a->used)
            continue;
        int fd = a->io.bio.fd;
        loom__io_deinit(loop, &a->io);
        close(fd);
        a->used = false;
    }
    c->live = 0;
    loom_timer_close(c->stagger);
    loom_timer_close(c->deadline);
    if (c->dns) {
        loom_dns_cancel(c->dns);
        c->dns = NULL;
    }
    loom__pending_cancel(&c->pend);
    s->h.flags &= ~LOOM__S_CONNECTING;
    s->u.conn = NULL;
    loom__handle_close(&c->h);
}

void loom__connect_cancel(loom_socket_t *s)
{
    if (s->h.flags & LOOM__S_CONNECTING)
        loom__connect_finish(s->u.conn);
}

/* "host:port", "[v6]:port" or a Unix path, into buf. */
static void loom__connect_target(const loom__connect *c, char *buf, size_t size)
{
    if (c->s->h.flags & LOOM__S_UNIX)
        snprintf(buf, size, "%s", c->host);
    else if (strchr(c->host, ':') && c->host[0] != '[')
        snprintf(buf, size, "[%s]:%d", c->host, c->port);
    else
        snprintf(buf, size, "%s:%d", c->host, c->port);
}

/* Appends " <address> <reason>" for address i to buf (bounded). */
static size_t loom__connect_addr_msg(const loom__connect *c, int i, char *buf, size_t size,
                                     size_t n)
{
    char ip[INET6_ADDRSTRLEN + 110];
    int port = 0;
    if (n >= size || loom_sockaddr_name((const struct sockaddr *)&c->addr[i], c->alen[i], ip,
                                        sizeof ip, &port) < 0)
        return n;
    int err = c->aerr[i];
    const char *why = err == LOOM_ECONNREFUSED ? "refused"
                      : err == LOOM_ETIMEDOUT  ? "timed out"
                                               : loom_strerror(err);
    int w;
    if (c->s->h.flags & LOOM__S_UNIX)
        w = snprintf(buf + n, size - n, "%s %s", ip, why);
    else if (c->addr[i].ss_family == AF_INET6)
        w = snprintf(buf + n, size - n, "[%s]:%d %s", ip, port, why);
    else
        w = snprintf(buf + n, size - n, "%s:%d %s", ip, port, why);
    return w < 0 ? n : n + (size_t)w;
}

/* What a failed connect tried, for its event: "connect to 127.0.0.1:9
 * refused" when the host was the one address, else "connect to localhost:9
 * failed: [::1]:9 refused, 127.0.0.1:9 refused" (every address tried, in
 * order), and for the connect timeout "connect to host:port failed: connect
 * timeout (3000 ms)". Bounded by `size` (cut short if needed). */
static void loom__connect_msg(const loom__connect *c, int err, char *buf, size_t size)
{
    char target[LOOM__CONN_HOST_MAX + 16];
    loom__connect_target(c, target, sizeof target);
    if (err == LOOM_ETIMEDOUT && c->timeout_ms) {
        snprintf(buf, size, "connect to %s failed: connect timeout (%u ms)", target,
                 (unsigned)c->timeout_ms);
        return;
    }
    if (c->literal && c->naddr == 1 && c->aerr[0]) {
        if (c->aerr[0] == LOOM_ECONNREFUSED)
            snprintf(buf, size, "connect to %s refused", target);
        else
            snprintf(buf, size, "connect to %s failed: %s", target, loom_strerror(c->aerr[0]));
        return;
    }
    int w = snprintf(buf, size, "connect to %s failed:", target);
    size_t n = w < 0 ? 0 : (size_t)w;
    bool any = false;
    for (int i = 0; i < c->naddr; i++) {
        if (c->aerr[i] == 0)
            continue;
        if (n < size) {
            w = snprintf(buf + n, size - n, "%s", any ? ", " : " ");
            n += w < 0 ? 0 : (size_t)w;
        }
        n = loom__connect_addr_msg(c, i, buf, size, n);
        any = true;
    }
    if (!any && n < size)
        snprintf(buf + n, size - n, " %s", c->naddr ? loom_strerror(err) : "no address to try");
}

static void loom__connect_fail(loom__connect *c, int err)
{
    loom_socket_t *s = c->s;
    char msg[LOOM__CONN_MSG];
    loom__connect_msg(c, err, msg, sizeof msg);
    loom__connect_finish(c);
    loom__socket_fail_msg(s, err, msg);
}

/* Address i connected on fd: the socket keeps the address (if its class
 * does), for messages after the peer is gone. */
static void loom__connect_win(loom__connect *c, int fd, int i)
{
    loom_socket_t *s = c->s;
    loom__socket_keep_peer(s, (const struct sockaddr *)&c->addr[i], c->alen[i]);
    loom__connect_finish(c);
    if (loom__socket_attach(s, fd, false) == 0)
        loom__socket_ready(s);
}

static void loom__connect_next(loom__connect *c);

static void loom__attempt_cb(loom__io *w, unsigned events)
{
    loom__attempt *a = LOOM__CONTAINER_OF(w, loom__attempt, io);
    loom__connect *c = a->c;
    loom_loop_t *loop = c->s->h.loop;
    int fd = a->io.bio.fd;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0 && (events & LOOM_HUP))
        err = ECONNREFUSED;
    loom__io_deinit(loop, &a->io);
    a->used = false;
    c->live--;
    if (err == 0) {
        loom__connect_win(c, fd, a->idx);
        return;
    }
    close(fd);
    c->error = loom__err(err);
    c->aerr[a->idx] = c->error;
    loom__connect_next(c);
}

/* Starts an attempt on address i. Returns 0 (in progress), 1 (connected and
 * handed over: the connector is gone) or a LOOM_E* code. */
static int loom__attempt_start(loom__connect *c, int i)
{
    loom_loop_t *loop = c->s->h.loop;
    const struct sockaddr *sa = (const struct sockaddr *)&c->addr[i];
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return loom__err(errno);
    int r;
    do
        r = connect(fd, sa, c->alen[i]);
    while (r < 0 && errno == EINTR);
    if (r == 0) {
        loom__connect_win(c, fd, i);
        return 1;
    }
    if (errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        if (sa->sa_family == AF_UNIX && (err == ENOENT || err == ECONNREFUSED))
            return LOOM_ECONNREFUSED;
        return loom__err(err);
    }
    loom__attempt *a = NULL;
    for (int k = 0; k < LOOM__CONN_MAX_ATTEMPTS; k++)
        if (!c->att[k].used)
            a = &c->att[k];
    r = loom__io_init(loop, &a->io, fd, loom__attempt_cb);
    if (r == 0)
        r = loom__io_set(loop, &a->io, LOOM_WRITABLE);
    if (r < 0) {
        loom__io_deinit(loop, &a->io);
        close(fd);
        return r;
    }
    a->c = c;
    a->idx = i;
    a->used = true;
    c->live++;
    return 0;
}

static void loom__connect_next(loom__connect *c)
{
    while (c->next < c->naddr && c->live < LOOM__CONN_MAX_ATTEMPTS) {
        int i = c->next++;
        int r = loom__attempt_start(c, i);
        if (r == 1)
            return;
        if (r == 0) {
            if (c->next < c->naddr)
                loom_timer_start(c->stagger, c->delay_ms, 0);
            return;
        }
        c->error = r;
        c->aerr[i] = r;
    }
    if (c->live == 0)
        loom__connect_fail(c, c->error ? c->error : LOOM_ECONNREFUSED);
}

static void loom__connect_stagger_cb(loom_timer_t *t, void *data)
{
    (void)t;
    loom__connect_next(data);
}

static void loom__connect_deadline_cb(loom_timer_t *t, void *data)
{
    (void)t;
    loom__connect_fail(data, LOOM_ETIMEDOUT);
}

static void loom__connect_pending(loom__pending *p)
{
    loom__connect *c = LOOM__CONTAINER_OF(p, loom__connect, pend);
    if (c->dns_error) {
        loom_socket_t *s = c->s;
        int err = c->dns_error;
        char msg[LOOM__CONN_HOST_MAX + 64];
        snprintf(msg, sizeof msg, "dns lookup of %s failed: %s", c->host,
                 err == LOOM_ENOTFOUND ? "no address of the requested family" : loom_strerror(err));
        loom__connect_finish(c);
        loom__socket_event(s, LOOM_EV_DNS_ERROR, err, msg);
        loom__socket_close_now(s, false);
        return;
    }
    loom__connect_next(c);
}

static void loom__connect_add(loom__connect *c, const struct sockaddr *sa, socklen_t len)
{
    if (c->naddr >= LOOM__CONN_MAX_ADDRS || len > sizeof c->addr[0])
        return;
    memcpy(&c->addr[c->naddr], sa, len);
    if (sa->sa_family == AF_INET)
        ((struct sockaddr_in *)&c->addr[c->naddr])->sin_port = htons((uint16_t)c->port);
    else if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)&c->addr[c->naddr])->sin6_port = htons((uint16_t)c->port);
    c->alen[c->naddr++] = len;
}

static void loom__connect_dns_cb(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    loom__connect *c = data;
    (void)q;
    c->dns = NULL;
    /* Interleave the families, the resolver's first one first (RFC 8305). */
    int first = res->addrs[0].family;
    size_t i = 0, j = 0;
    while (i < res->count || j < res->count) {
        while (i < res->count && res->addrs[i].family != first)
            i++;
        if (i < res->count) {
            loom__connect_add(c, &res->addrs[i].sa.sa, res->addrs[i].salen);
            i++;
        }
        while (j < res->count && res->addrs[j].family == first)
            j++;
        if (j < res->count) {
            loom__connect_add(c, &res->addrs[j].sa.sa, res->addrs[j].salen);
            j++;
        }
    }
    loom__connect_next(c);
}

static void loom__connect_dns_event(const loom_event_t *ev, void *data)
{
    loom__connect *c = data;
    loom_socket_t *s = c->s;
    c->dns = NULL;
    loom__connect_finish(c);
    loom__socket_event(s, LOOM_EV_DNS_ERROR, ev->code, ev->msg);
    loom__socket_close_now(s, false);
}

/* Creates the socket and its connector; the caller adds addresses or a
 * query, then the pending callback starts the first attempt. */
static int loom__connect_new(loom_loop_t *loop, const char *host, int port,
                             const loom_tcp_opts *opts, loom__sock_class *given, loom_socket_t **sp,
                             loom__connect **cp)
{
    static const loom_tcp_opts defaults;
    if (opts == NULL)
        opts = &defaults;
    if (loop->freeing)
        return LOOM_ECLOSED;
    if (opts->tls && loom_tls_ctx_is_server(opts->tls))
        return LOOM_EINVAL;
    loom__sock_class *cls = given ? given : loom__class_client(opts, host, port);
    if (cls == NULL)
        return LOOM_ENOMEM;
    int r = loom__class_groups(loop, cls);
    if (r < 0) {
        if (given == NULL)
            free(cls);
        return r;
    }
    loom_socket_t *s = loom__socket_new(loop, cls, -1);
    if (s == NULL) {
        if (given == NULL)
            free(cls);
        return LOOM_ENOMEM;
    }
    if (opts->tls) {
        /* Its session before any write (the initial bytes wait in it). */
        r = loom__tls_client_setup(s, opts->tls, opts->server_name ? opts->server_name : host,
                                   port);
        if (r < 0) {
            loom__socket_discard(s);
            return r;
        }
    }
    loom__connect *c = calloc(1, sizeof *c);
    if (c == NULL)
        goto fail_socket;
    if (loom__net_timer_new(loop, &c->stagger, loom__connect_stagger_cb, c) < 0)
        goto fail_conn;
    if (loom__net_timer_new(loop, &c->deadline, loom__connect_deadline_cb, c) < 0)
        goto fail_stagger;
    loom__handle_init(loop, &c->h, LOOM__T_OTHER, loom__connect_free, true);
    c->s = s;
    c->delay_ms = opts->attempt_delay_ms ? opts->attempt_delay_ms : LOOM__ATTEMPT_DELAY_MS;
    c->family = opts->family;
    c->pend.fn = loom__connect_pending;
    snprintf(c->host, sizeof c->host, "%s", host);
    for (int i = 0; i < LOOM__CONN_MAX_ATTEMPTS; i++)
        c->att[i].io.bio.fd = -1;
    s->h.flags |= LOOM__S_CONNECTING;
    s->u.conn = c;
    uint32_t timeout = opts->connect_timeout_ms ? opts->connect_timeout_ms : opts->write_timeout_ms;
    c->timeout_ms = timeout;
    if (timeout)
        loom_timer_start(c->deadline, timeout, 0);
    /* The initial bytes wait in the write queue (through the transport, if
     * any) and leave once connected, as any write made while connecting. */
    if (opts->initial && opts->initial_len &&
        loom_socket_write(s, opts->initial, opts->initial_len) < 0) {
        loom__socket_discard(s);
        return LOOM_ENOMEM;
    }
    *sp = s;
    *cp = c;
    return 0;

fail_stagger:
    loom_timer_close(c->stagger);
fail_conn:
    free(c);
fail_socket:
    loom__socket_discard(s);
    return LOOM_ENOMEM;
}

int loom__tcp_connect_cls(loom_loop_t *loop, const char *host, int port, const loom_tcp_opts *opts,
                          loom__sock_class *cls, loom_socket_t **out)
{
    if (loop == NULL || host == NULL || host[0] == '\0' || port <= 0 || port > 65535)
        return LOOM_EINVAL;
    if (strlen(host) > LOOM__CONN_HOST_MAX)
        return LOOM_ENAMETOOLONG;
    int family = opts ? opts->family : 0;
    if (family != 0 && family != AF_INET && family != AF_INET6)
        return LOOM_EINVAL;
    loom_socket_t *s;
    loom__connect *c;
    int r = loom__connect_new(loop, host, port, opts, cls, &s, &c);
    if (r < 0)
        return r;
    c->port = port;
    struct sockaddr_storage ss;
    socklen_t len = loom__parse_ip(host, port, &ss);
    if (len) {
        c->literal = true;
        if (family && ss.ss_family != family)
            c->dns_error = LOOM_ENOTFOUND;
        else
            loom__connect_add(c, (struct sockaddr *)&ss, len);
    } else if (strcasecmp(host, "localhost") == 0) {
        /* No query for localhost: ::1 first, then 127.0.0.1 (RFC 6761). */
        if (family != AF_INET) {
            loom__parse_ip("::1", port, &ss);
            loom__connect_add(c, (struct sockaddr *)&ss, sizeof(struct sockaddr_in6));
        }
        if (family != AF_INET6) {
            loom__parse_ip("127.0.0.1", port, &ss);
            loom__connect_add(c, (struct sockaddr *)&ss, sizeof(struct sockaddr_in));
        }
    } else {
        loom_dns_opts dopts = {.on_event = loom__connect_dns_event, .data = c};
        r = loom_dns_lookup(loop, host, family ? family : LOOM_DNS_UNSPEC, loom__connect_dns_cb,
                            &dopts, &c->dns);
        if (r < 0) {
            if (r == LOOM_EINVAL || r == LOOM_ENAMETOOLONG) {
                loom__socket_discard(s);
                return r;
            }
            c->dns = NULL;
            c->dns_error = r;
        }
    }
    if (c->dns == NULL)
        loom__pending_queue(loop, &c->pend);
    if (out)
        *out = s;
    return 0;
}

int loom_tcp_connect(loom_loop_t *loop, const char *host, int port, const loom_tcp_opts *opts,
                     loom_socket_t **out)
{
    return loom__tcp_connect_cls(loop, host, port, opts, NULL, out);
}

int loom__unix_connect_cls(loom_loop_t *loop, const char *path, const loom_tcp_opts *opts,
                           loom__sock_class *cls, loom_socket_t **out)
{
    if (loop == NULL || path == NULL)
        return LOOM_EINVAL;
    struct sockaddr_un un;
    socklen_t len;
    int r = loom__parse_unix(path, &un, &len);
    if (r < 0)
        return r;
    loom_socket_t *s;
    loom__connect *c;
    r = loom__connect_new(loop, path, 0, opts, cls, &s, &c);
    if (r < 0)
        return r;
    s->h.flags |= LOOM__S_UNIX;
    c->literal = true;
    loom__connect_add(c, (struct sockaddr *)&un, len);
    loom__pending_queue(loop, &c->pend);
    if (out)
        *out = s;
    return 0;
}

int loom_unix_connect(loom_loop_t *loop, const char *path, const loom_tcp_opts *opts,
                      loom_socket_t **out)
{
    return loom__unix_connect_cls(loop, path, opts, NULL, out);
}

/* --- Servers ------------------------------------------------------------------------- */

struct loom_tcp_server {
    loom__handle h; /* h.data: the server's data slot */
    loom__io io;
    loom__sock_class *cls;
    loom_timer_t *retry; /* accept back-off, created on first need */
    int handed;          /* kaccept: the fd or error the backend handed over */
    bool handing;        /* kaccept: `handed` is there to take */
    bool kaccept;        /* the backend accepts (LOOM_BACKEND_CAP_ACCEPT) */
    loom__queue node;    /* in the loop's server list */
    char *path;          /* Unix socket file to unlink on close */
    int port;
    bool is_unix;
    bool paused; /* loom__tcp_server_pause() */
};

static void loom__server_free(loom__handle *h)
{
    loom_tcp_server_t *srv = (loom_tcp_server_t *)h;
    loom__class_unref(srv->cls);
    free(srv->path);
    free(srv);
}

static void loom__server_accepted(loom_backend_io_t *bio, int fd_or_err);

/* Accepting on (LOOM_READABLE) or off (0): the listen fd's watcher, or the
 * backend's own accept where it has one (io_uring's multishot accept). */
static int loom__server_watch(loom_loop_t *loop, loom_tcp_server_t *srv, unsigned events)
{
    if (srv->kaccept) {
        if (events == 0) {
            loop->backend->accept_stop(loop, &srv->io.bio);
            return 0;
        }
        int r = loop->backend->accept_start(loop, &srv->io.bio, loom__server_accepted);
        if (r != LOOM_ENOTSUP)
            return r;
        srv->kaccept = false;
    }
    return loom__io_set(loop, &srv->io, events);
}

/* The peer of a socket the backend accepted (its multishot accept shares
 * one address buffer between connections, so it is asked for none): from
 * the kernel. getpeername() fails (ENOTCONN) once the peer has reset the
 * connection; Linux's SO_PEERNAME still answers then, as accept would
 * have, given the exact length of the family's address. */
static socklen_t loom__server_peer_of(int fd, struct sockaddr_storage *ss)
{
    socklen_t len = sizeof *ss;
    if (getpeername(fd, (struct sockaddr *)ss, &len) == 0)
        return len;
#ifdef SO_PEERNAME
    len = sizeof *ss;
    if (errno == ENOTCONN && getsockname(fd, (struct sockaddr *)ss, &len) == 0 &&
        (ss->ss_family == AF_INET || ss->ss_family == AF_INET6)) {
        len = ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERNAME, ss, &len) == 0)
            return len;
    }
#endif
    return 0;
}

/* The next connection, like accept4() (which fills *ss, *len for an IP
 * server): from the listen fd, or the one the backend handed over (then
 * EAGAIN once it is taken). */
static int loom__server_next(loom_tcp_server_t *srv, struct sockaddr_storage *ss, socklen_t *len)
{
    if (!srv->kaccept) {
        if (srv->is_unix) {
            *len = 0; /* the peer of a Unix connection is unnamed, as a rule */
            return accept4(srv->io.bio.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        }
        *len = sizeof *ss;
        return accept4(srv->io.bio.fd, (struct sockaddr *)ss, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    }
    if (!srv->handing) {
        errno = EAGAIN;
        return -1;
    }
    srv->handing = false;
    if (srv->handed >= 0) {
        *len = srv->is_unix ? 0 : loom__server_peer_of(srv->handed, ss);
        return srv->handed;
    }
    errno = -srv->handed;
    return -1;
}

static void loom__server_backoff(loom_tcp_server_t *srv, int err);

static void loom__server_retry_cb(loom_timer_t *t, void *data)
{
    loom_tcp_server_t *srv = data;
    (void)t;
    if ((srv->h.flags & LOOM__H_CLOSING) || srv->paused)
        return;
    /* Cannot accept again yet (out of watches or memory): report it and
     * retry later, rather than stop accepting for good without a word. */
    int r = loom__server_watch(srv->h.loop, srv, LOOM_READABLE);
    if (r < 0)
        loom__server_backoff(srv, r);
}

/* What failed and why, for the event and the log line alike: "tcp server on
 * port 8080: accept failed: Too many open files; retrying", or "unix server
 * /run/app.sock: ...". */
static void loom__server_accept_msg(loom_tcp_server_t *srv, int err, char *buf, size_t size)
{
    if (srv->is_unix)
        snprintf(buf, size, "unix server %s: accept failed: %s; retrying",
                 srv->path ? srv->path : "(abstract)", loom_strerror(err));
    else
        snprintf(buf, size, "tcp server on port %d: accept failed: %s; retrying", srv->port,
                 loom_strerror(err));
}

/* A tcp accept error event, or the class's proto_accept_error hook. */
static void loom__server_accept_error(loom_tcp_server_t *srv, int err)
{
    if (srv->cls->proto_accept_error) {
        srv->cls->proto_accept_error(srv, err);
        return;
    }
    char msg[256];
    loom__server_accept_msg(srv, err, msg, sizeof msg);
    loom__event_emit(srv->h.loop, srv->cls->on_event, srv->h.data, LOOM_EV_TCP_ACCEPT_ERROR, err,
                     msg, srv);
}

/* Out of descriptors or memory: stop watching the listen fd, report once,
 * and look again after a pause. Clients can cause this (by opening many
 * connections), and the server recovers by itself: with no handler it is a
 * log line, never the end of loom_run(). */
static void loom__server_backoff(loom_tcp_server_t *srv, int err)
{
    loom_loop_t *loop = srv->h.loop;
    loom__server_watch(loop, srv, 0);
    if (srv->retry == NULL &&
        loom__net_timer_new(loop, &srv->retry, loom__server_retry_cb, srv) < 0)
        srv->retry = NULL;
    if (srv->retry)
        loom_timer_start(srv->retry, LOOM__ACCEPT_RETRY_MS, 0);
    if (srv->cls->proto_accept_error == NULL && srv->cls->on_event == NULL &&
        loop->on_event == NULL) {
        char msg[256];
        loom__server_accept_msg(srv, err, msg, sizeof msg);
        loom_log(loop, LOOM_LOG_WARNING, "%s", msg);
        return;
    }
    loom__server_accept_error(srv, err);
}

static void loom__server_io_cb(loom__io *w, unsigned events)
{
    loom_tcp_server_t *srv = LOOM__CONTAINER_OF(w, loom_tcp_server_t, io);
    loom_loop_t *loop = srv->h.loop;
    (void)events;
    for (int i = 0; i < LOOM__ACCEPT_BATCH; i++) {
        if ((srv->h.flags & LOOM__H_CLOSING) || srv->paused)
            return;
        struct sockaddr_storage ss;
        socklen_t sl;
        int fd = loom__server_next(srv, &ss, &sl);
        if (fd < 0) {
            int e = errno;
            switch (e) {
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                return;
            case EMFILE:
            case ENFILE:
            case ENOBUFS:
            case ENOMEM:
                loom__server_backoff(srv, loom__err(e));
                return;
            case EBADF:
            case EINVAL:
            case ENOTSOCK:
            case EOPNOTSUPP:
            case EFAULT:
                /* The listen socket itself is broken: report and stop. */
                loom__server_watch(loop, srv, 0);
                loom__server_accept_error(srv, loom__err(e));
                return;
            default:
                /* EINTR, ECONNABORTED and the network errors of the
                 * connection being accepted (see accept(2)): try the next. */
                continue;
            }
        }
        loom_socket_t *s = loom__socket_new(loop, srv->cls, -1);
        if (s == NULL) {
            close(fd);
            loom__server_backoff(srv, LOOM_ENOMEM);
            return;
        }
        if (srv->is_unix)
            s->h.flags |= LOOM__S_UNIX;
        loom__socket_keep_peer(s, sl ? (struct sockaddr *)&ss : NULL, sl);
        if (srv->cls->proto_admit)
            srv->cls->proto_admit(s);
        if (loom__socket_attach(s, fd, true) == 0)
            loom__socket_ready(s);
    }
}

/* The backend's accept (CAP_ACCEPT) handed over a connection or an error:
 * the same path as an accept4() result on readiness. */
static void loom__server_accepted(loom_backend_io_t *bio, int fd_or_err)
{
    loom_tcp_server_t *srv = LOOM__CONTAINER_OF((loom__io *)bio, loom_tcp_server_t, io);
    srv->handed = fd_or_err;
    srv->handing = true;
    loom__server_io_cb(&srv->io, LOOM_READABLE);
    if (srv->handing && srv->handed >= 0)
        close(srv->handed); /* not taken: the server closes or pauses */
    srv->handing = false;
}

/* `family`: the listen socket's (AF_INET, AF_INET6, AF_UNIX); an IP
 * server's sockets keep their peer's address (cls->keep_peer, set here,
 * before the class's first socket: a class given by its owner serves this
 * one server). */
static int loom__server_new(loom_loop_t *loop, int fd, const loom_tcp_server_opts *opts,
                            loom__sock_class *given, int family, loom_tcp_server_t **out)
{
    loom__net *net = loom__net_get(loop);
    if (net == NULL)
        return LOOM_ENOMEM;
    loom_tcp_server_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return LOOM_ENOMEM;
    if (given) {
        srv->cls = given;
        loom__class_ref(given);
    } else {
        srv->cls = loom__class_server(opts);
        if (srv->cls == NULL)
            goto fail_srv;
        srv->cls->refs = 1;
    }
    srv->cls->keep_peer = family == AF_INET    ? 8
                          : family == AF_INET6 ? (uint8_t)sizeof(loom__peer_addr)
                                               : 0;
    /* A class with proto_accept may pause accepting (HTTP max_connections):
     * waiting connections must stay in the backlog, which a kernel-side
     * multishot accept would drain (and close) instead. */
    srv->kaccept = srv->cls->proto_accept == NULL &&
                   (loop->backend->caps & LOOM_BACKEND_CAP_ACCEPT) &&
                   loop->backend->accept_start != NULL && loop->backend->accept_stop != NULL;
    int r = loom__class_groups(loop, srv->cls);
    if (r == 0)
        r = loom__io_init(loop, &srv->io, fd, loom__server_io_cb);
    if (r == 0)
        r = loom__server_watch(loop, srv, LOOM_READABLE);
    if (r < 0) {
        loom__io_deinit(loop, &srv->io);
        loom__class_unref(srv->cls);
        free(srv);
        return r;
    }
    loom__handle_init(loop, &srv->h, LOOM__T_SERVER, loom__server_free, false);
    loom__handle_start(&srv->h);
    srv->h.data = opts->data;
    loom__queue_insert_tail(&net->servers, &srv->node);
    *out = srv;
    return 0;

fail_srv:
    free(srv);
    return LOOM_ENOMEM;
}

static int loom__listen_fd(int family, const struct sockaddr *sa, socklen_t len,
                           const loom_tcp_server_opts *o, bool v6only, int *out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return loom__err(errno);
    int one = 1, r;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuseport) {
#if LOOM_HAVE_REUSEPORT
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
            goto fail_errno;
#else
        close(fd);
        return LOOM_ENOTSUP;
#endif
    }
    if (family == AF_INET6) {
        int v = v6only ? 1 : 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
    }
    /* Accepted sockets inherit these (see loom__socket_attach). */
    if (!o->nagle)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->keepalive_s) {
        int idle = (int)o->keepalive_s;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    }
    if (bind(fd, sa, len) < 0)
        goto fail_errno;
    if (listen(fd, o->backlog > 0 ? o->backlog : 511) < 0)
        goto fail_errno;
    *out = fd;
    return 0;

fail_errno:
    r = loom__err(errno);
    close(fd);
    return r;
}

int loom__tcp_server_cls(loom_loop_t *loop, const char *bind_addr, int port,
                         const loom_tcp_server_opts *opts, loom__sock_class *cls,
                         loom_tcp_server_t **out)
{
    static const loom_tcp_server_opts defaults;
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || port < 0 || port > 65535)
        return LOOM_EINVAL;
    if (loop->freeing)
        return LOOM_ECLOSED;
    struct sockaddr_storage ss;
    socklen_t len;
    int fd = -1, r;
    if (bind_addr == NULL) {
        /* Every address: one dual-stack socket, else IPv4 only. */
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        memset(&ss, 0, sizeof ss);
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons((uint16_t)port);
        r = loom__listen_fd(AF_INET6, (struct sockaddr *)&ss, sizeof *in6, opts, opts->v6only, &fd);
        if (r == LOOM_EAFNOSUPPORT || r == LOOM_EADDRNOTAVAIL) {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
            memset(&ss, 0, sizeof ss);
            in4->sin_family = AF_INET;
            in4->sin_addr.s_addr = htonl(INADDR_ANY);
            in4->sin_port = htons((uint16_t)port);
            r = loom__listen_fd(AF_INET, (struct sockaddr *)&ss, sizeof *in4, opts, false, &fd);
        }
    } else {
        len = loom__parse_ip(strcasecmp(bind_addr, "localhost") == 0 ? "127.0.0.1" : bind_addr,
                             port, &ss);
        if (len == 0)
            return LOOM_EINVAL;
        r = loom__listen_fd(ss.ss_family, (struct sockaddr *)&ss, len, opts, true, &fd);
    }
    if (r < 0)
        return r;
    loom_tcp_server_t *srv;
    r = loom__server_new(loop, fd, opts, cls, ss.ss_family, &srv);
    if (r < 0) {
        close(fd);
        return r;
    }
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)&ss)->sin6_port);
    if (out)
        *out = srv;
    return 0;
}

int loom_tcp_server(loom_loop_t *loop, const char *bind_addr, int port,
                    const loom_tcp_server_opts *opts, loom_tcp_server_t **out)
{
    return loom__tcp_server_cls(loop, bind_addr, port, opts, NULL, out);
}

/* Unlinks a socket file nobody listens on. Returns 0 (free to bind),
 * LOOM_EADDRINUSE (someone listens), LOOM_EEXIST (not a socket) or an
 * error. */
static int loom__unix_clear_stale(const char *path, const struct sockaddr_un *un, socklen_t len)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : loom__err(errno);
    if (!S_ISSOCK(st.st_mode))
        return LOOM_EEXIST;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return loom__err(errno);
    int r = connect(fd, (const struct sockaddr *)un, len);
    int e = errno;
    close(fd);
    if (r == 0 || e == EAGAIN || e == EINPROGRESS)
        return LOOM_EADDRINUSE;
    if (e != ECONNREFUSED)
        return loom__err(e);
    if (unlink(path) < 0 && errno != ENOENT)
        return loom__err(errno);
    return 0;
}

int loom__unix_server_cls(loom_loop_t *loop, const char *path, const loom_tcp_server_opts *opts,
                          loom__sock_class *cls, loom_tcp_server_t **out)
{
    static const loom_tcp_server_opts defaults;
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || path == NULL)
        return LOOM_EINVAL;
    if (loop->freeing)
        return LOOM_ECLOSED;
    struct sockaddr_un un;
    socklen_t len;
    int r = loom__parse_unix(path, &un, &len);
    if (r < 0)
        return r;
    bool abstract = path[0] == '@';
    char *copy = NULL;
    if (!abstract) {
        r = loom__unix_clear_stale(path, &un, len);
        if (r < 0)
            return r;
        copy = strdup(path);
        if (copy == NULL)
            return LOOM_ENOMEM;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = loom__err(errno);
        goto fail_copy;
    }
    if (bind(fd, (struct sockaddr *)&un, len) < 0 ||
        listen(fd, opts->backlog > 0 ? opts->backlog : 511) < 0) {
        r = loom__err(errno);
        goto fail_fd;
    }
    loom_tcp_server_t *srv;
    r = loom__server_new(loop, fd, opts, cls, AF_UNIX, &srv);
    if (r < 0)
        goto fail_file;
    srv->is_unix = true;
    srv->path = copy;
    if (out)
        *out = srv;
    return 0;

fail_file:
    if (copy)
        unlink(copy);
fail_fd:
    close(fd);
fail_copy:
    free(copy);
    return r;
}

int loom_unix_server(loom_loop_t *loop, const char *path, const loom_tcp_server_opts *opts,
                     loom_tcp_server_t **out)
{
    return loom__unix_server_cls(loop, path, opts, NULL, out);
}

loom__sock_class *loom__server_class(loom_tcp_server_t *srv)
{
    return srv->cls;
}

void loom__tcp_server_pause(loom_tcp_server_t *srv, bool pause)
{
    if (srv->h.flags & LOOM__H_CLOSING)
        return;
    srv->paused = pause;
    if (pause)
        loom__server_watch(srv->h.loop, srv, 0);
    else if (srv->retry == NULL || !loom_timer_active(srv->retry))
        loom__server_watch(srv->h.loop, srv, LOOM_READABLE);
}

void loom__tcp_server_own(loom_tcp_server_t *srv)
{
    loom__handle_own(&srv->h);
}

void loom_tcp_server_close(loom_tcp_server_t *srv)
{
    if (srv == NULL || (srv->h.flags & LOOM__H_CLOSING))
        return;
    loom_loop_t *loop = srv->h.loop;
    int fd = srv->io.bio.fd;
    loom__server_watch(loop, srv, 0);
    loom__io_deinit(loop, &srv->io);
    close(fd);
    srv->io.bio.fd = -1;
    if (srv->path)
        unlink(srv->path);
    loom_timer_close(srv->retry);
    srv->retry = NULL;
    loom__queue_remove(&srv->node);
    loom__handle_close(&srv->h);
}

void loom__servers_free(loom_loop_t *loop)
{
    loom__net *net = loop->net;
    while (!loom__queue_empty(&net->servers))
        loom_tcp_server_close(LOOM__CONTAINER_OF(net->servers.next, loom_tcp_server_t, node));
}

typedef struct {
    loom__sock_class *cls;
    int count;
} loom__close_conns;

static void loom__close_conn_cb(loom_socket_t *s, void *arg)
{
    loom__close_conns *cc = arg;
    if (s->cls == cc->cls && !loom__socket_dead(s) && loom_socket_close(s) == 0)
        cc->count++;
}

int loom_tcp_server_close_connections(loom_tcp_server_t *srv)
{
    if (srv == NULL || (srv->h.flags & LOOM__H_CLOSING))
        return LOOM_ECLOSED;
    loom__close_conns cc = {.cls = srv->cls, .count = 0};
    loom__net_foreach_socket(srv->h.loop, loom__close_conn_cb, &cc);
    return cc.count;
}

int loom_tcp_server_port(const loom_tcp_server_t *srv)
{
    if (srv == NULL || (srv->h.flags & LOOM__H_CLOSING))
        return LOOM_ECLOSED;
    return srv->port;
}

int loom_tcp_server_fd(const loom_tcp_server_t *srv)
{
    if (srv == NULL || (srv->h.flags & LOOM__H_CLOSING))
        return LOOM_ECLOSED;
    return srv->io.bio.fd;
}

loom_loop_t *loom_tcp_server_loop(const loom_tcp_server_t *srv)
{
    return srv ? srv->h.loop : NULL;
}

void *loom_tcp_server_data(const loom_tcp_server_t *srv)
{
    return srv ? srv->h.data : NULL;
}

void loom_tcp_server_set_data(loom_tcp_server_t *srv, void *data)
{
    if (srv == NULL || (srv->h.flags & LOOM__H_CLOSING))
        return;
    srv->h.data = data;
    srv->cls->data = data;
}
