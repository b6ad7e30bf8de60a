/* loom/dns.h - asynchronous name resolution, cl-async's dns-lookup.
 *
 * Lookups run on c-ares, driven by the loop's own fd watchers and timers: no
 * thread per query. A loop creates its resolver lazily on the first query and
 * frees it with the loop. Lookups honour /etc/hosts (consulted first),
 * resolv.conf and its search domains, unless the options override the
 * servers.
 *
 * Outcomes. A query ends in exactly one of three ways:
 *  - success: its result callback runs once with every address;
 *  - failure: a LOOM_EV_DNS_ERROR event goes to opts->on_event, else to the
 *    loop's default event callback (see loom/event.h). Its code is
 *    LOOM_ENOTFOUND (no such name, or no address of the requested family),
 *    LOOM_ETIMEDOUT (no server answered in time), LOOM_ECONNREFUSED (no
 *    server could be reached), LOOM_ENOMEM, or LOOM_EDNS (any other resolver
 *    failure); its msg names the host and gives the resolver's reason
 *    (c-ares's ares_strerror()): "dns lookup of nohost.invalid failed:
 *    Domain name not found" ("reverse dns lookup of 192.0.2.1 failed: ..."
 *    for a reverse query), and its object is the query;
 *  - cancellation by loom_dns_cancel(): then nothing is called at all.
 * The result callback or the error event is the query's one completion and
 * its close notification: it runs exactly once (never after a cancel).
 * No callback ever runs before loom_dns_lookup() or loom_dns_reverse() has
 * returned, even for a numeric host or an /etc/hosts hit, which are answered
 * on a later iteration of the loop.
 *
 * A query is a loop object: it counts in loom_loop_live() and keeps the loop
 * alive until it ends, and stats.dns_pending counts it while it is pending.
 * The query pointer stays valid until its result callback or its error event
 * has returned, or until the end of the iteration in which loom_dns_cancel()
 * was called; after that the pointer is dead and its memory is reused:
 * forget it in the callback (or when cancelling). A query still pending at
 * loom_loop_free() ends without any callback.
 *
 * Every function here is for the loop's thread only.
 */
#ifndef LOOM_DNS_H
#define LOOM_DNS_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "loom/common.h"
#include "loom/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_dns_query loom_dns_query_t;

/* Address families for loom_dns_lookup(); the values are the AF_* ones. */
typedef enum loom_dns_family {
    LOOM_DNS_UNSPEC = AF_UNSPEC, /* IPv4 and IPv6 addresses */
    LOOM_DNS_INET = AF_INET,     /* IPv4 only */
    LOOM_DNS_INET6 = AF_INET6    /* IPv6 only */
} loom_dns_family;

/* Longest address string, with its terminating NUL ("ffff:...:255.255.255.255"). */
#define LOOM_DNS_ADDRSTRLEN 46

/* One address of an answer. */
typedef struct loom_dns_addr {
    int family;                     /* AF_INET or AF_INET6 */
    char addr[LOOM_DNS_ADDRSTRLEN]; /* "127.0.0.1", "::1" */
    /* The same address ready for connect(): port 0 (set sin_port or
     * sin6_port), sin6_scope_id filled for scoped IPv6 addresses. */
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } sa;
    socklen_t salen; /* sizeof the in4 or in6 member in use */
} loom_dns_addr_t;

/* A successful answer. It and everything it points to are valid only for the
 * duration of the result callback; copy what you need. */
typedef struct loom_dns_result {
    const char *host;             /* the name that was looked up, as given */
    size_t count;                 /* number of addresses, >= 1 */
    const loom_dns_addr_t *addrs; /* every address, in the resolver's preference order */
    /* Convenience copies of the first address: cl-async's (addr family). */
    const char *addr; /* == addrs[0].addr */
    int family;       /* == addrs[0].family */
} loom_dns_result_t;

/* Result callbacks. `data` is opts->data. The query may not be cancelled from
 * here (it is already ending); it is freed when the callback returns. */
typedef void (*loom_dns_cb)(loom_dns_query_t *query, const loom_dns_result_t *res, void *data);
/* `host` is the primary name of the address, valid during the callback. */
typedef void (*loom_dns_reverse_cb)(loom_dns_query_t *query, const char *host, void *data);

/* Options for a query; a zeroed struct (or NULL) gives the defaults. Queries
 * with the same timeout, tries and servers share one c-ares channel. */
typedef struct loom_dns_opts {
    loom_event_cb on_event; /* receives the dns error event; NULL: loop default */
    void *data;             /* passed to the result callback and to on_event */
    /* Time to wait for one answer, per try, in ms; 0: resolv.conf's
     * "options timeout", else c-ares's default. */
    unsigned timeout_ms;
    /* Number of tries per server; 0: resolv.conf's "options attempts", else
     * c-ares's default. */
    unsigned tries;
    /* Comma-separated servers, replacing resolv.conf's: "127.0.0.1:5353",
     * "[::1]:53,10.0.0.1" (port 53 when omitted). NULL: resolv.conf's.
     * Copied; /etc/hosts is still consulted first. */
    const char *servers;
} loom_dns_opts;

/* Looks up the addresses of `host` (a name, or a numeric IPv4 or IPv6
 * address) of `family` (LOOM_DNS_INET, LOOM_DNS_INET6 or LOOM_DNS_UNSPEC).
 * On success cb runs once with every address; on failure a dns error event
 * is delivered instead (see the top of this file). `host` is copied. `opts`
 * may be NULL. `out` (may be NULL) receives the query, for
 * loom_dns_cancel().
 * Returns 0, or without calling anything: LOOM_EINVAL (NULL or empty host,
 * NULL cb, bad family, unparsable opts->servers), LOOM_ENAMETOOLONG (host
 * longer than 255 bytes), LOOM_ECLOSED (the loop is being freed),
 * LOOM_ENOMEM or LOOM_EDNS (resolver set-up failed).
 * Loop thread only. */
LOOM_EXTERN int loom_dns_lookup(loom_loop_t *loop, const char *host, int family, loom_dns_cb cb,
                                const loom_dns_opts *opts, loom_dns_query_t **out);

/* Looks up the host name of the numeric IPv4 or IPv6 address `addr`
 * ("127.0.0.1"), consulting /etc/hosts, then PTR records. On success cb runs
 * once with the name; on failure a dns error event is delivered (code
 * LOOM_ENOTFOUND when the address has no name). `addr` is copied; `opts` and
 * `out` as for loom_dns_lookup(). Returns 0, LOOM_EINVAL (NULL cb, or `addr`
 * not a numeric address), LOOM_ENOMEM or LOOM_EDNS. Loop thread only. */
LOOM_EXTERN int loom_dns_reverse(loom_loop_t *loop, const char *addr, loom_dns_reverse_cb cb,
                                 const loom_dns_opts *opts, loom_dns_query_t **out);

/* Cancels a pending query: neither its result callback nor an event will be
 * called. It stops counting in stats.dns_pending at once and stops keeping
 * the loop alive; the loop frees it (and stops counting it as live) at the
 * end of the iteration, so the pointer must not be used after that. A
 * request already sent is abandoned: its answer, if one comes, is dropped.
 * Callable from any loom callback, including another query's. Returns 0, or
 * LOOM_ECLOSED if the query is already ending (called from its own result
 * callback or error event, or a second time in the same iteration). Loop
 * thread only. */
LOOM_EXTERN int loom_dns_cancel(loom_dns_query_t *query);

/* The name (or, for a reverse query, the address) being looked up. */
LOOM_EXTERN const char *loom_dns_query_host(const loom_dns_query_t *query);

/* The query's user slot: opts->data. */
LOOM_EXTERN void *loom_dns_query_data(const loom_dns_query_t *query);

/* The query's loop. */
LOOM_EXTERN loom_loop_t *loom_dns_query_loop(const loom_dns_query_t *query);

#ifdef __cplusplus
}
#endif
#endif
