/* test_tcp_dns: connecting by a name goes through loom's DNS. The name is
 * taken from /etc/hosts (other than "localhost", which needs no lookup) and
 * must map to 127.0.0.1 or ::1, so no query leaves the machine; skipped (77)
 * when /etc/hosts has none. */
#include <arpa/inet.h>

#include "test_tcp_util.h"

static loom_tcp_server_t *srv;
static char want_ip[64];
static int connected;

static void cli_connect(loom_socket_t *s, void *data)
{
    char ip[64];
    CHECK_OK(loom_socket_peer_name(s, ip, sizeof ip, NULL));
    CHECK_STR(ip, want_ip);
    connected++;
    loom_socket_close(s);
    loom_tcp_server_close(srv);
}

static void on_event(const loom_event_t *ev, void *data)
{
    if (ev->kind != LOOM_EV_TCP_EOF) {
        fprintf(stderr, "event %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
        CHECK(!"unexpected event");
    }
}

/* The first loopback name in /etc/hosts other than localhost. */
static int find_name(char *name, size_t size)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (f == NULL)
        return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *save = NULL;
        char *addr = strtok_r(line, " \t\r\n", &save);
        if (addr == NULL || (strcmp(addr, "127.0.0.1") != 0 && strcmp(addr, "::1") != 0))
            continue;
        char *n;
        while ((n = strtok_r(NULL, " \t\r\n", &save)) != NULL) {
            if (strcasecmp(n, "localhost") == 0 || strlen(n) >= size || strchr(n, '.') != NULL)
                continue;
            snprintf(name, size, "%s", n);
            snprintf(want_ip, sizeof want_ip, "%s", addr);
            found = 1;
            break;
        }
    }
    fclose(f);
    return found;
}

static int dns_errors;

static void dns_error_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_DNS_ERROR);
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK_EQ(ev->code, LOOM_ENOTFOUND);
    dns_errors++;
}

int main(void)
{
    test_timeout(10);
    /* A literal of the wrong family resolves to nothing: a dns error event,
     * without any query. */
    loom_loop_t *l0 = test_loop_new();
    CHECK_OK(loom_tcp_connect(l0, "127.0.0.1", 80,
                              &(loom_tcp_opts){.on_event = dns_error_event, .family = AF_INET6},
                              NULL));
    CHECK_EQ(dns_errors, 0); /* never inside the call */
    CHECK_EQ(loom_run(l0, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(dns_errors, 1);
    test_loop_free_clean(l0);

    char name[256];
    if (!find_name(name, sizeof name))
        TEST_SKIP("no loopback name in /etc/hosts");
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(
        loom_tcp_server(loop, want_ip, 0, &(loom_tcp_server_opts){.on_event = on_event}, &srv));
    CHECK_OK(loom_tcp_connect(loop, name, loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = cli_connect,
                                               .on_event = on_event,
                                               .family = strchr(want_ip, ':') ? AF_INET6 : AF_INET},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(connected, 1);
    test_loop_free_clean(loop);
    return 0;
}
