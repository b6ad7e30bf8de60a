/* tests/net/test_dns.c - loom's DNS resolver against a real DNS server.
 *
 * The test starts its own dnsmasq on a free loopback port with records it
 * owns (loom.test), and always passes the `servers` option, so no query
 * leaves the machine. Timeouts use a UDP socket the test opens and never
 * reads. /etc/hosts behaviour is checked with "localhost", which c-ares
 * answers from the hosts file (or, per RFC 6761, by itself). Skips (77) only
 * when dnsmasq is missing.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

#define DNSMASQ "/usr/sbin/dnsmasq"

static pid_t dnsmasq_pid = -1;
static char servers[64];   /* "127.0.0.1:<dnsmasq port>" */
static char blackhole[64]; /* "127.0.0.1:<port nobody answers on>" */
static int blackhole_fd = -1;

/* --- The DNS server --------------------------------------------------------- */

static void dnsmasq_stop(void)
{
    if (dnsmasq_pid > 0) {
        kill(dnsmasq_pid, SIGTERM);
        waitpid(dnsmasq_pid, NULL, 0);
        dnsmasq_pid = -1;
    }
}

/* A port free for both UDP and TCP on 127.0.0.1, or 0. */
static int free_port(void)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        int t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof sa;
        int port = 0;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sa, sizeof sa) == 0 &&
            getsockname(u, (struct sockaddr *)&sa, &len) == 0 &&
            bind(t, (struct sockaddr *)&sa, sizeof sa) == 0)
            port = ntohs(sa.sin_port);
        close(u);
        close(t);
        if (port)
            return port;
    }
    return 0;
}

/* Sends one A query for `name` to 127.0.0.1:port; returns 1 on any answer. */
static int dns_ping(int port, const char *name)
{
    unsigned char pkt[512] = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t n = 12;
    for (const char *p = name; *p;) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        pkt[n++] = (unsigned char)l;
        memcpy(pkt + n, p, l);
        n += l;
        p += l + (dot ? 1 : 0);
    }
    pkt[n++] = 0;
    pkt[n++] = 0, pkt[n++] = 1; /* A */
    pkt[n++] = 0, pkt[n++] = 1; /* IN */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = 0;
    if (fd >= 0 && sendto(fd, pkt, n, 0, (struct sockaddr *)&sa, sizeof sa) == (ssize_t)n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        ok = poll(&pfd, 1, 200) == 1;
    }
    close(fd);
    return ok;
}

static void dnsmasq_start(void)
{
    if (access(DNSMASQ, X_OK) != 0)
        TEST_SKIP("%s is missing (Debian package dnsmasq-base)", DNSMASQ);

    static char hosts[] = "/tmp/loom-dns-hosts-XXXXXX";
    int hfd = mkstemp(hosts);
    CHECK(hfd >= 0);
    static const char hosts_text[] = "127.0.0.44 hosts.loom.test\n";
    CHECK(write(hfd, hosts_text, sizeof hosts_text - 1) == (ssize_t)(sizeof hosts_text - 1));
    close(hfd);

    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        CHECK(port > 0);
        char port_arg[32], hosts_arg[64];
        snprintf(port_arg, sizeof port_arg, "--port=%d", port);
        snprintf(hosts_arg, sizeof hosts_arg, "--addn-hosts=%s", hosts);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* Never outlive the test, even when it dies by its alarm. */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) {
                dup2(devnull, 1);
                dup2(devnull, 2);
            }
            execl(DNSMASQ, "dnsmasq", "--no-daemon", port_arg, "--listen-address=127.0.0.1",
                  "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                  "--user=", hosts_arg, "--local=/loom.test/", "--local=/127.in-addr.arpa/",
                  "--host-record=a.loom.test,127.0.0.1,::1",
                  "--host-record=multi.loom.test,127.0.0.2,::1",
                  "--host-record=multi.loom.test,127.0.0.3", "--host-record=r.loom.test,127.0.0.77",
                  "--host-record=v4only.loom.test,127.0.0.5", (char *)NULL);
            _exit(127);
        }
        dnsmasq_pid = pid;
        for (int i = 0; i < 50; i++) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                dnsmasq_pid = -1;
                break;
            }
            if (dns_ping(port, "a.loom.test")) {
                snprintf(servers, sizeof servers, "127.0.0.1:%d", port);
                unlink(hosts);
                return;
            }
        }
        dnsmasq_stop();
    }
    unlink(hosts);
    fprintf(stderr, "dnsmasq did not start\n");
    exit(1);
}

/* A UDP socket that receives queries and never answers. */
static void blackhole_open(void)
{
    blackhole_fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(blackhole_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    CHECK(bind(blackhole_fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(getsockname(blackhole_fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(blackhole, sizeof blackhole, "127.0.0.1:%d", ntohs(sa.sin_port));
}

/* --- Recording outcomes -------------------------------------------------------- */

typedef struct rec {
    int answers, events;
    int code;
    loom_event_kind_t kind;
    char msg[128];
    void *object;
    size_t count;
    char addrs[8][LOOM_DNS_ADDRSTRLEN];
    int families[8];
    char first[LOOM_DNS_ADDRSTRLEN];
    int first_family;
    uint32_t first_scope;
    char host[256];
    loom_dns_query_t *query;
} rec;

static void on_answer(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    rec *r = data;
    r->answers++;
    r->query = q;
    CHECK(res->count >= 1);
    CHECK(res->addr == res->addrs[0].addr);
    CHECK_EQ(res->family, res->addrs[0].family);
    CHECK_STR(res->host, loom_dns_query_host(q));
    CHECK(loom_dns_query_data(q) == data);
    CHECK(loom_dns_query_loop(q) != NULL);
    /* The query is ending: it can no longer be cancelled. */
    CHECK_EQ(loom_dns_cancel(q), LOOM_ECLOSED);
    r->count = res->count;
    snprintf(r->first, sizeof r->first, "%s", res->addr);
    r->first_family = res->family;
    if (res->family == AF_INET6)
        r->first_scope = res->addrs[0].sa.in6.sin6_scope_id;
    snprintf(r->host, sizeof r->host, "%s", res->host);
    for (size_t i = 0; i < res->count && i < 8; i++) {
        const loom_dns_addr_t *a = &res->addrs[i];
        snprintf(r->addrs[i], sizeof r->addrs[i], "%s", a->addr);
        r->families[i] = a->family;
        /* The sockaddr is the same address, port 0, ready for connect(). */
        char buf[LOOM_DNS_ADDRSTRLEN];
        CHECK_EQ(a->sa.sa.sa_family, a->family);
        if (a->family == AF_INET) {
            CHECK_EQ(a->salen, sizeof(struct sockaddr_in));
            CHECK_EQ(a->sa.in4.sin_port, 0);
            CHECK(inet_ntop(AF_INET, &a->sa.in4.sin_addr, buf, sizeof buf));
        } else {
            CHECK_EQ(a->family, AF_INET6);
            CHECK_EQ(a->salen, sizeof(struct sockaddr_in6));
            CHECK_EQ(a->sa.in6.sin6_port, 0);
            CHECK(inet_ntop(AF_INET6, &a->sa.in6.sin6_addr, buf, sizeof buf));
        }
        CHECK_STR(buf, a->addr);
    }
}

static void on_reverse(loom_dns_query_t *q, const char *host, void *data)
{
    rec *r = data;
    r->answers++;
    r->query = q;
    snprintf(r->host, sizeof r->host, "%s", host);
}

static void on_event(const loom_event_t *ev, void *data)
{
    rec *r = data;
    r->events++;
    r->kind = ev->kind;
    r->code = ev->code;
    r->object = ev->object;
    snprintf(r->msg, sizeof r->msg, "%s", ev->msg);
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK(loom_dns_query_loop(ev->object) == ev->loop);
    CHECK_EQ(loom_dns_cancel(ev->object), LOOM_ECLOSED);
}

static bool has_addr(const rec *r, const char *addr, int family)
{
    for (size_t i = 0; i < r->count && i < 8; i++)
        if (strcmp(r->addrs[i], addr) == 0 && r->families[i] == family)
            return true;
    return false;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static loom_dns_opts opts_for(rec *r)
{
    return (loom_dns_opts){.on_event = on_event, .data = r, .servers = servers};
}

/* Runs one lookup to completion on a fresh loop and checks the loop ends
 * clean. The callback must not have run when loom_dns_lookup() returns. */
static void lookup_one(const char *host, int family, rec *r)
{
    memset(r, 0, sizeof *r);
    loom_loop_t *loop = test_loop_new();
    loom_dns_opts o = opts_for(r);
    loom_dns_query_t *q = NULL;
    CHECK_OK(loom_dns_lookup(loop, host, family, on_answer, &o, &q));
    CHECK(q != NULL);
    CHECK_EQ(r->answers + r->events, 0);
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 1);
    CHECK(loom_loop_live(loop) >= 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r->answers + r->events, 1);
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 0);
    test_loop_free_clean(loop);
}

/* --- Tests --------------------------------------------------------------------- */

static void test_answers(void)
{
    rec r;
    lookup_one("a.loom.test", LOOM_DNS_INET, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_EQ(r.count, 1);
    CHECK_STR(r.first, "127.0.0.1");
    CHECK_EQ(r.first_family, AF_INET);
    CHECK_STR(r.host, "a.loom.test");

    lookup_one("a.loom.test", LOOM_DNS_INET6, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_EQ(r.count, 1);
    CHECK_STR(r.first, "::1");
    CHECK_EQ(r.first_family, AF_INET6);

    lookup_one("multi.loom.test", LOOM_DNS_UNSPEC, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_EQ(r.count, 3);
    CHECK(has_addr(&r, "127.0.0.2", AF_INET));
    CHECK(has_addr(&r, "127.0.0.3", AF_INET));
    CHECK(has_addr(&r, "::1", AF_INET6));

    lookup_one("multi.loom.test", LOOM_DNS_INET, &r);
    CHECK_EQ(r.count, 2);
    CHECK(has_addr(&r, "127.0.0.2", AF_INET) && has_addr(&r, "127.0.0.3", AF_INET));

    /* A name with only IPv4 addresses, asked for both families. */
    lookup_one("v4only.loom.test", LOOM_DNS_UNSPEC, &r);
    CHECK_EQ(r.count, 1);
    CHECK_STR(r.first, "127.0.0.5");

    /* Served from the server's hosts file (--addn-hosts). */
    lookup_one("hosts.loom.test", LOOM_DNS_INET, &r);
    CHECK_STR(r.first, "127.0.0.44");

    /* Search domains: LOCALDOMAIN=loom.test makes "a" mean a.loom.test. */
    lookup_one("a", LOOM_DNS_INET, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "127.0.0.1");
}

static void test_nxdomain(void)
{
    rec r;
    lookup_one("nx.loom.test", LOOM_DNS_UNSPEC, &r);
    CHECK_EQ(r.answers, 0);
    CHECK_EQ(r.events, 1);
    CHECK_EQ(r.kind, LOOM_EV_DNS_ERROR);
    CHECK_EQ(r.code, LOOM_ENOTFOUND);
    /* The message names the host, then gives the resolver's reason. */
    char want[160];
    snprintf(want, sizeof want, "dns lookup of nx.loom.test failed: %s",
             ares_strerror(ARES_ENOTFOUND));
    CHECK_STR(r.msg, want);

    /* The name exists, but has no address of the family asked for. */
    lookup_one("v4only.loom.test", LOOM_DNS_INET6, &r);
    CHECK_EQ(r.events, 1);
    CHECK_EQ(r.code, LOOM_ENOTFOUND);

    /* Without on_event the error goes to the loop's default callback. */
    rec d;
    memset(&d, 0, sizeof d);
    loom_loop_t *loop = NULL;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = on_event, .event_data = &d}));
    loom_dns_query_t *q = NULL;
    CHECK_OK(loom_dns_lookup(loop, "nx.loom.test", LOOM_DNS_INET, on_answer,
                             &(loom_dns_opts){.servers = servers}, &q));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(d.events, 1);
    CHECK_EQ(d.kind, LOOM_EV_DNS_ERROR);
    CHECK_EQ(d.code, LOOM_ENOTFOUND);
    CHECK(d.object == q);
    test_loop_free_clean(loop);

    /* With no handler at all, the error ends loom_run() with its code. */
    loop = test_loop_new();
    CHECK_OK(loom_dns_lookup(loop, "nx.loom.test", LOOM_DNS_INET, on_answer,
                             &(loom_dns_opts){.servers = servers}, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), LOOM_ENOTFOUND);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void test_query_timeout(void)
{
    rec r;
    memset(&r, 0, sizeof r);
    loom_loop_t *loop = test_loop_new();
    uint64_t t0 = now_ms();
    CHECK_OK(loom_dns_lookup(
        loop, "slow.loom.test", LOOM_DNS_INET, on_answer,
        &(loom_dns_opts){
            .on_event = on_event, .data = &r, .servers = blackhole, .timeout_ms = 150, .tries = 1},
        NULL));
    /* The query is the one live object: the resolver's retry timer is
     * loom's own, as the query's sockets are. */
    CHECK_EQ(loom_loop_live(loop), 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    CHECK_EQ(loom_loop_live(loop), 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    uint64_t took = now_ms() - t0;
    CHECK_EQ(r.answers, 0);
    CHECK_EQ(r.events, 1);
    CHECK_EQ(r.kind, LOOM_EV_DNS_ERROR);
    CHECK_EQ(r.code, LOOM_ETIMEDOUT);
    char want[160];
    snprintf(want, sizeof want, "dns lookup of slow.loom.test failed: %s",
             ares_strerror(ARES_ETIMEOUT));
    CHECK_STR(r.msg, want);
    CHECK(took >= 100);
    CHECK(took < 8000); /* loose: a loaded machine is slow, not a hang */
    test_loop_free_clean(loop);
}

/* Cancelling from inside another query's callback. */
typedef struct cancel_ctx {
    loom_dns_query_t *same;  /* on the answering channel; NULL once ended */
    loom_dns_query_t *other; /* on the blackhole channel */
    int answers, victim_answers, cancelled;
} cancel_ctx;

static void on_answer_cancel_others(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    (void)q, (void)res;
    cancel_ctx *c = data;
    c->answers++;
    if (c->same) {
        CHECK_OK(loom_dns_cancel(c->same));
        c->same = NULL;
        c->cancelled++;
    }
    CHECK_OK(loom_dns_cancel(c->other));
}

static void on_victim_answer(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    (void)q, (void)res;
    cancel_ctx *c = data;
    c->victim_answers++;
    c->same = NULL;
}

static void on_never(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    (void)q, (void)res, (void)data;
    fprintf(stderr, "callback after cancel\n");
    exit(1);
}

static void on_never_event(const loom_event_t *ev, void *data)
{
    (void)ev, (void)data;
    fprintf(stderr, "event after cancel\n");
    exit(1);
}

static void test_cancel(void)
{
    loom_loop_t *loop = test_loop_new();
    /* In flight to a server that never answers for 20 s: cancelled queries
     * must not wait for it. The bounds below (5 s) leave a loaded machine
     * room and are still far below that timeout. */
    loom_dns_opts never = {
        .on_event = on_never_event, .servers = blackhole, .timeout_ms = 20000, .tries = 1};
    loom_dns_query_t *q1, *q2, *q3, *q4;

    CHECK_OK(loom_dns_lookup(loop, "slow.loom.test", LOOM_DNS_UNSPEC, on_never, &never, &q1));
    /* A numeric answer waiting for the next iteration. */
    CHECK_OK(loom_dns_lookup(loop, "127.0.0.1", LOOM_DNS_INET, on_never, &never, &q2));
    /* An /etc/hosts answer waiting for the next iteration. */
    CHECK_OK(loom_dns_lookup(loop, "localhost", LOOM_DNS_INET, on_never, &never, &q3));
    /* A reverse query in flight. */
    CHECK_OK(loom_dns_reverse(loop, "127.0.0.99", (loom_dns_reverse_cb)(void (*)(void))on_never,
                              &never, &q4));
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 4);
    CHECK_OK(loom_dns_cancel(q1));
    CHECK_EQ(loom_dns_cancel(q1), LOOM_ECLOSED); /* still valid until the loop frees it */
    CHECK_OK(loom_dns_cancel(q2));
    CHECK_OK(loom_dns_cancel(q3));
    CHECK_OK(loom_dns_cancel(q4));
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 0);
    uint64_t t0 = now_ms();
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    /* Nothing waited for the server's timeout. */
    CHECK(now_ms() - t0 < 5000);
    test_loop_free_clean(loop);

    /* Cancel after some iterations in flight, next to a query that
     * completes on the same channel. */
    loop = test_loop_new();
    rec r;
    memset(&r, 0, sizeof r);
    loom_dns_opts o = opts_for(&r);
    loom_dns_opts never2 = {.on_event = on_never_event, .servers = servers};
    CHECK_OK(loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, on_answer, &o, NULL));
    CHECK_OK(loom_dns_lookup(loop, "multi.loom.test", LOOM_DNS_INET, on_never, &never2, &q1));
    CHECK_OK(loom_dns_cancel(q1));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.answers, 1);
    test_loop_free_clean(loop);

    loop = test_loop_new();
    CHECK_OK(loom_dns_lookup(loop, "slow.loom.test", LOOM_DNS_INET, on_never, &never, &q1));
    for (int i = 0; i < 3; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) == 1);
    CHECK_OK(loom_dns_cancel(q1));
    t0 = now_ms();
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(now_ms() - t0 < 5000);
    test_loop_free_clean(loop);

    /* Cancel queries from inside another query's callback: one on the same
     * channel (unless it was answered first), one on another channel. */
    loop = test_loop_new();
    cancel_ctx c = {0};
    CHECK_OK(loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, on_answer_cancel_others,
                             &(loom_dns_opts){.servers = servers, .data = &c}, NULL));
    CHECK_OK(loom_dns_lookup(loop, "multi.loom.test", LOOM_DNS_UNSPEC, on_victim_answer,
                             &(loom_dns_opts){.servers = servers, .data = &c}, &c.same));
    CHECK_OK(loom_dns_lookup(loop, "slow.loom.test", LOOM_DNS_INET, on_never, &never, &c.other));
    t0 = now_ms();
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(now_ms() - t0 < 5000);
    CHECK_EQ(c.answers, 1);
    CHECK_EQ(c.victim_answers + c.cancelled, 1);
    test_loop_free_clean(loop);
}

/* loom_raise() inside a result callback routes to the query's on_event. */
typedef struct raise_ctx {
    loom_loop_t *loop;
    int app_events;
} raise_ctx;

static void on_answer_raise(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    (void)res;
    raise_ctx *c = data;
    CHECK_OK(loom_raise(c->loop, LOOM_EAPP, "boom", q));
}

static void on_raise_event(const loom_event_t *ev, void *data)
{
    raise_ctx *c = data;
    CHECK_EQ(ev->kind, LOOM_EV_APP_ERROR);
    CHECK_EQ(ev->code, LOOM_EAPP);
    CHECK_STR(ev->msg, "boom");
    c->app_events++;
}

static void test_raise(void)
{
    raise_ctx c = {.loop = test_loop_new()};
    CHECK_OK(loom_dns_lookup(
        c.loop, "a.loom.test", LOOM_DNS_INET, on_answer_raise,
        &(loom_dns_opts){.servers = servers, .data = &c, .on_event = on_raise_event}, NULL));
    CHECK_EQ(loom_run(c.loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.app_events, 1);
    test_loop_free_clean(c.loop);
}

static void test_numeric(void)
{
    rec r;
    lookup_one("127.0.0.1", LOOM_DNS_INET, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_EQ(r.count, 1);
    CHECK_STR(r.first, "127.0.0.1");

    lookup_one("::1", LOOM_DNS_UNSPEC, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "::1");
    CHECK_EQ(r.first_family, AF_INET6);

    lookup_one("0:0::0001", LOOM_DNS_INET6, &r);
    CHECK_STR(r.first, "::1"); /* normalised */
    CHECK_EQ(r.first_scope, 0);

    /* A scoped IPv6 address keeps its scope in the sockaddr. */
    lookup_one("fe80::1%1", LOOM_DNS_INET6, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "fe80::1");
    CHECK_EQ(r.first_scope, 1);
    lookup_one("fe80::1%lo", LOOM_DNS_UNSPEC, &r);
    CHECK_EQ(r.answers, 1);
    CHECK_EQ(r.first_scope, 1);

    /* A numeric host of the other family has no address of the one asked. */
    lookup_one("127.0.0.1", LOOM_DNS_INET6, &r);
    CHECK_EQ(r.events, 1);
    CHECK_EQ(r.code, LOOM_ENOTFOUND);

    /* Numeric hosts need no resolver and no server: no servers option. */
    memset(&r, 0, sizeof r);
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_dns_lookup(loop, "10.1.2.3", LOOM_DNS_UNSPEC, on_answer,
                             &(loom_dns_opts){.data = &r}, NULL));
    CHECK_EQ(r.answers, 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_ONCE), 0);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "10.1.2.3");
    test_loop_free_clean(loop);
}

static void test_hosts_file(void)
{
    /* localhost comes from /etc/hosts (or c-ares's RFC 6761 rule), never
     * from DNS: the only server configured never answers. */
    rec r;
    memset(&r, 0, sizeof r);
    loom_loop_t *loop = test_loop_new();
    /* DNS would take the 20 s timeout (and fail): the 5 s bounds are loose. */
    loom_dns_opts o = {
        .on_event = on_event, .data = &r, .servers = blackhole, .timeout_ms = 20000, .tries = 1};
    CHECK_OK(loom_dns_lookup(loop, "localhost", LOOM_DNS_INET, on_answer, &o, NULL));
    CHECK_EQ(r.answers + r.events, 0);
    uint64_t t0 = now_ms();
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(now_ms() - t0 < 5000);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "127.0.0.1");

    memset(&r, 0, sizeof r);
    CHECK_OK(loom_dns_lookup(loop, "localhost", LOOM_DNS_INET6, on_answer, &o, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r.answers, 1);
    CHECK_STR(r.first, "::1");

    /* The absolute name "localhost." is the same name (one trailing dot):
     * /etc/hosts and RFC 6761 answer it too, at once, never DNS. */
    const int fams[2] = {LOOM_DNS_INET, LOOM_DNS_INET6};
    for (int i = 0; i < 2; i++) {
        memset(&r, 0, sizeof r);
        CHECK_OK(loom_dns_lookup(loop, "localhost.", fams[i], on_answer, &o, NULL));
        t0 = now_ms();
        CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
        CHECK(now_ms() - t0 < 5000);
        CHECK_EQ(r.answers, 1);
        CHECK_STR(r.first, i == 0 ? "127.0.0.1" : "::1");
    }
    test_loop_free_clean(loop);
}

static void test_reverse(void)
{
    loom_loop_t *loop = test_loop_new();
    rec r1, r2, r3;
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    memset(&r3, 0, sizeof r3);
    /* 127.0.0.1 is in /etc/hosts ("localhost"), and has a PTR record on the
     * test server (a.loom.test) in case it is not. */
    CHECK_OK(loom_dns_reverse(
        loop, "127.0.0.1", on_reverse,
        &(loom_dns_opts){.on_event = on_event, .data = &r1, .servers = servers}, NULL));
    /* 127.0.0.77 has a PTR record on the test server only. */
    CHECK_OK(loom_dns_reverse(
        loop, "127.0.0.77", on_reverse,
        &(loom_dns_opts){.on_event = on_event, .data = &r2, .servers = servers}, NULL));
    /* 127.0.0.99 has no name. */
    CHECK_OK(loom_dns_reverse(
        loop, "127.0.0.99", on_reverse,
        &(loom_dns_opts){.on_event = on_event, .data = &r3, .servers = servers}, NULL));
    CHECK_EQ(r1.answers + r2.answers + r3.answers + r1.events + r2.events + r3.events, 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r1.answers, 1);
    CHECK(r1.host[0] != '\0');
    CHECK_EQ(r2.answers, 1);
    CHECK_STR(r2.host, "r.loom.test");
    CHECK_EQ(r3.events, 1);
    CHECK_EQ(r3.kind, LOOM_EV_DNS_ERROR);
    CHECK_EQ(r3.code, LOOM_ENOTFOUND);
    test_loop_free_clean(loop);
}

#define MANY 200
static int many_answers, many_events;

static void on_many_answer(loom_dns_query_t *q, const loom_dns_result_t *res, void *data)
{
    (void)q;
    intptr_t i = (intptr_t)data;
    many_answers++;
    if (i % 2 == 0)
        CHECK_STR(res->addr, "127.0.0.1");
    else
        CHECK_EQ(res->count, 2);
}

static void on_many_event(const loom_event_t *ev, void *data)
{
    intptr_t i = (intptr_t)data;
    CHECK_EQ(i % 5, 4);
    CHECK_EQ(ev->code, LOOM_ENOTFOUND);
    many_events++;
}

static void test_many(void)
{
    loom_loop_t *loop = test_loop_new();
    many_answers = many_events = 0;
    int expect_answers = 0, expect_events = 0;
    for (intptr_t i = 0; i < MANY; i++) {
        const char *host = i % 5 == 4   ? "nx.loom.test"
                           : i % 2 == 0 ? "a.loom.test"
                                        : "multi.loom.test";
        if (i % 5 == 4)
            expect_events++;
        else
            expect_answers++;
        CHECK_OK(loom_dns_lookup(loop, host, LOOM_DNS_INET, on_many_answer,
                                 &(loom_dns_opts){.on_event = on_many_event,
                                                  .data = (void *)i,
                                                  .servers = servers,
                                                  .timeout_ms = 2000},
                                 NULL));
    }
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, MANY);
    CHECK_EQ(loom_loop_live(loop) >= MANY, 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(many_answers, expect_answers);
    CHECK_EQ(many_events, expect_events);
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 0);
    test_loop_free_clean(loop);
}

static void test_free_in_flight(void)
{
    /* Freed with queries in flight, stashed and cancelled: nothing runs,
     * nothing leaks (ASan checks the latter). */
    loom_loop_t *loop = test_loop_new();
    loom_dns_opts never = {.on_event = on_never_event, .servers = blackhole};
    loom_dns_query_t *q;
    CHECK_OK(loom_dns_lookup(loop, "slow.loom.test", LOOM_DNS_UNSPEC, on_never, &never, NULL));
    CHECK_OK(loom_dns_reverse(loop, "127.0.0.99", (loom_dns_reverse_cb)(void (*)(void))on_never,
                              &never, NULL));
    CHECK_OK(loom_dns_lookup(loop, "slow2.loom.test", LOOM_DNS_INET, on_never, &never, &q));
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    CHECK_OK(loom_dns_cancel(q));
    CHECK_OK(loom_dns_lookup(loop, "127.0.0.1", LOOM_DNS_INET, on_never, &never, NULL));
    CHECK_OK(loom_dns_lookup(loop, "localhost", LOOM_DNS_INET, on_never, &never, NULL));
    loom_loop_free(loop);
}

/* fork(): in the child, loom_loop_fork() drops the parent's channels. The
 * query in flight ends with LOOM_ECANCELED, a new lookup gets its answer, and
 * the parent's query is untouched. The child ends with _exit (exit would run
 * the parent's atexit handler, which stops dnsmasq). */
static void test_fork(void)
{
    loom_loop_t *loop = test_loop_new();
    rec r;
    memset(&r, 0, sizeof r);
    loom_dns_opts o = {
        .on_event = on_event, .data = &r, .servers = blackhole, .timeout_ms = 5000, .tries = 1};
    loom_dns_query_t *q;
    CHECK_OK(loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, on_answer, &o, &q));
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (loom_loop_fork(loop) < 0)
            _exit(2);
        uint64_t end = now_ms() + 3000;
        while (r.events + r.answers == 0 && now_ms() < end)
            (void)loom_run(loop, LOOM_RUN_ONCE);
        if (r.events != 1 || r.answers != 0 || r.code != LOOM_ECANCELED ||
            r.kind != LOOM_EV_DNS_ERROR)
            _exit(3);
        rec r2;
        memset(&r2, 0, sizeof r2);
        loom_dns_opts o2 = opts_for(&r2);
        if (loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, on_answer, &o2, NULL) < 0)
            _exit(4);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0)
            _exit(5);
        if (r2.answers != 1 || strcmp(r2.first, "127.0.0.1") != 0)
            _exit(6);
        if (loom_loop_live(loop) != 0)
            _exit(7);
        loom_loop_free(loop);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(r.events + r.answers, 0);
    CHECK_OK(loom_dns_cancel(q));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void test_bad_args(void)
{
    loom_loop_t *loop = test_loop_new();
    rec r;
    loom_dns_opts o = opts_for(&r);
    CHECK_EQ(loom_dns_lookup(loop, NULL, LOOM_DNS_INET, on_answer, &o, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_dns_lookup(loop, "", LOOM_DNS_INET, on_answer, &o, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_dns_lookup(loop, "a.loom.test", 12345, on_answer, &o, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, NULL, &o, NULL), LOOM_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ(loom_dns_lookup(loop, longname, LOOM_DNS_INET, on_answer, &o, NULL),
             LOOM_ENAMETOOLONG);
    CHECK_EQ(loom_dns_lookup(loop, "a.loom.test", LOOM_DNS_INET, on_answer,
                             &(loom_dns_opts){.servers = "not a server list"}, NULL),
             LOOM_EINVAL);
    CHECK_EQ(loom_dns_reverse(loop, "a.loom.test", on_reverse, &o, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_dns_cancel(NULL), LOOM_EINVAL);
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.dns_pending, 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(25);
    signal(SIGPIPE, SIG_IGN);
    /* Search domains come from here instead of resolv.conf, so that a name
     * the search list extends still ends at the test's server. */
    setenv("LOCALDOMAIN", "loom.test", 1);
    unsetenv("RES_OPTIONS");
    dnsmasq_start();
    atexit(dnsmasq_stop);
    blackhole_open();

    test_bad_args();
    test_numeric();
    test_answers();
    test_nxdomain();
    test_hosts_file();
    test_reverse();
    test_query_timeout();
    test_cancel();
    test_raise();
    test_many();
    test_free_in_flight();
    test_fork();

    close(blackhole_fd);
    return 0;
}
