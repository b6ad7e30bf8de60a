/* test_h2_check: the character checks of http/h2_check.c, byte by byte.
 * Field values are checked eight bytes at a step (a word without a
 * control byte or DEL passes whole) and strings by one pass that answers
 * every class at once, so each byte value is tried at each position of
 * values and names of lengths 1 to 24 (both sides of every word boundary),
 * against the rules as RFC 9113 section 8.2.1 and RFC 3986 state them:
 * - a value: HTAB, SP, 0x21-0x7e and 0x80-0xff, without white space at
 *   either end;
 * - a name: lowercase tchar;
 * - the host of :authority or host: unreserved, sub-delims, "%", ":" and
 *   the brackets, which loom__h2chk_host_ok() reports so that the server's
 *   own host check need not run again; in their structure (RFC 3986
 *   section 3.2.2-3.2.3: port = *DIGIT, an IP literal well formed, "%" then
 *   two hex digits), else the request is malformed. The structure itself
 *   (loom__h2chk_host_syntax, shared with the HTTP/1 server) is tried on a
 *   table of hosts.
 * Pure: no loop, no peer. LOOM_TEST_NO_BACKEND. */
#include <string.h>

#include "http/h2_check.h"
#include "test.h"

static bool value_byte(unsigned b)
{
    return b == '\t' || b == ' ' || (b >= 0x21 && b <= 0x7e) || b >= 0x80;
}

static bool tchar(unsigned b)
{
    return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
           (b != 0 && strchr("!#$%&'*+-.^_`|~", (int)b) != NULL);
}

static bool host_byte(unsigned b)
{
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') ||
           (b != 0 && strchr("-._~!$&'()*+,;=%:[]", (int)b) != NULL);
}

static const char *field(const char *n, size_t nl, const uint8_t *v, size_t vl, loom__h2chk *k)
{
    loom__h2chk_init(k);
    return loom__h2chk_field(k, (const uint8_t *)n, nl, v, vl, false);
}

int main(void)
{
    test_timeout(60);
    uint8_t v[32];
    char n[32];
    loom__h2chk k;
    long cases = 0;

    /* Values. */
    for (size_t len = 1; len <= 24; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (unsigned b = 0; b < 256; b++) {
                memset(v, 'a', sizeof v);
                v[pos] = (uint8_t)b;
                const char *why = field("x-test", 6, v, len, &k);
                bool ws_end = (b == ' ' || b == '\t') && (pos == 0 || pos == len - 1);
                if (!value_byte(b))
                    CHECK(why != NULL && strcmp(why, "invalid field value") == 0);
                else if (ws_end)
                    CHECK(why != NULL && strcmp(why, "white space around a field value") == 0);
                else
                    CHECK(why == NULL);
                cases++;
            }
        }
    }
    /* Two bad bytes in one word, and a bad byte after a good word. */
    memset(v, 'a', sizeof v);
    v[3] = '\t';
    v[5] = 0x7f;
    CHECK(field("x-test", 6, v, 8, &k) != NULL);
    memset(v, 'a', sizeof v);
    v[20] = '\n';
    CHECK(field("x-test", 6, v, 24, &k) != NULL);
    CHECK(field("x-test", 6, v, 20, &k) == NULL);

    /* Names. */
    for (size_t len = 1; len <= 24; len++) {
        for (size_t pos = 0; pos < len; pos++) {
            for (unsigned b = 0; b < 256; b++) {
                memset(n, 'x', sizeof n);
                n[pos] = (char)b;
                if (b == ':' && pos == 0)
                    continue; /* a pseudo-header field: other rules */
                const char *why = field(n, len, (const uint8_t *)"1", 1, &k);
                if (!tchar(b))
                    CHECK(why != NULL && strcmp(why, "invalid field name") == 0);
                else if (why != NULL) /* a name with a rule of its own ("te", ...) */
                    CHECK(len <= 17);
                cases++;
            }
        }
    }

    /* Hosts, as :authority and as host, on an origin-form request. */
    for (int as_host = 0; as_host < 2; as_host++) {
        for (size_t len = 1; len <= 20; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                for (unsigned b = 0; b < 256; b++) {
                    memset(v, 'h', sizeof v);
                    v[pos] = (uint8_t)b;
                    loom__h2chk_init(&k);
                    const char *why = NULL;
                    why = loom__h2chk_field(&k, (const uint8_t *)":method", 7,
                                            (const uint8_t *)"GET", 3, false);
                    CHECK(why == NULL);
                    why = loom__h2chk_field(&k, (const uint8_t *)":scheme", 7,
                                            (const uint8_t *)"https", 5, false);
                    CHECK(why == NULL);
                    why = loom__h2chk_field(&k, (const uint8_t *)":path", 5, (const uint8_t *)"/",
                                            1, false);
                    CHECK(why == NULL);
                    if (as_host)
                        why = loom__h2chk_field(&k, (const uint8_t *)"host", 4, v, len, false);
                    else
                        why =
                            loom__h2chk_field(&k, (const uint8_t *)":authority", 10, v, len, false);
                    /* One byte in "hhh...": a ":" is a port separator
                     * (only an empty port, at the end, is a port), and
                     * "[", "]" and "%" ("%h") break the structure. */
                    bool broken = (b == ':' && pos != len - 1) || b == '[' || b == ']' || b == '%';
                    if (host_byte(b) && broken) {
                        CHECK(why != NULL);
                        CHECK(strcmp(why, as_host ? "invalid host" : "invalid :authority") == 0);
                        cases++;
                        continue;
                    }
                    if (why != NULL) {
                        CHECK(!host_byte(b));
                        continue; /* not even an authority's characters */
                    }
                    CHECK(loom__h2chk_head(&k, true) == NULL);
                    CHECK_EQ(loom__h2chk_host_ok(&k, !as_host), host_byte(b));
                    CHECK(!loom__h2chk_host_ok(&k, as_host)); /* the other one was not given */
                    cases++;
                }
            }
        }
    }

    /* An http(s) :path must be origin-form, whatever the scheme's case;
     * another scheme's need not. */
    static const struct {
        const char *scheme;
        bool http;
    } schemes[] = {{"http", true}, {"https", true},  {"HTTPS", true},
                   {"hTtP", true}, {"httpx", false}, {"htt", false},
                   {"ftp", false}, {"h-tp", false},  {"http+s", false}};
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        loom__h2chk_init(&k);
        const char *sc = schemes[i].scheme;
        CHECK(loom__h2chk_field(&k, (const uint8_t *)":method", 7, (const uint8_t *)"GET", 3,
                                false) == NULL);
        CHECK(loom__h2chk_field(&k, (const uint8_t *)":scheme", 7, (const uint8_t *)sc, strlen(sc),
                                false) == NULL);
        CHECK(loom__h2chk_field(&k, (const uint8_t *)":path", 5, (const uint8_t *)"x", 1, false) ==
              NULL);
        CHECK(loom__h2chk_field(&k, (const uint8_t *)":authority", 10, (const uint8_t *)"h", 1,
                                false) == NULL);
        const char *why = loom__h2chk_head(&k, true);
        CHECK_EQ(why != NULL, schemes[i].http);
    }

    /* Not origin-form: the server's check decides. */
    loom__h2chk_init(&k);
    CHECK(loom__h2chk_field(&k, (const uint8_t *)":method", 7, (const uint8_t *)"CONNECT", 7,
                            false) == NULL);
    CHECK(loom__h2chk_field(&k, (const uint8_t *)":authority", 10, (const uint8_t *)"h:443", 5,
                            false) == NULL);
    CHECK(loom__h2chk_head(&k, false) == NULL);
    CHECK(!loom__h2chk_host_ok(&k, true));

    /* The structure of a uri-host [":" port]. */
    static const struct {
        const char *h;
        bool port, ok;
    } hosts[] = {
        {"a", true, true},          {"a:", true, true},          {"a:80", true, true},
        {"", true, true},           {":80", true, true},         {"127.0.0.1:8080", true, true},
        {"[::1]", true, true},      {"[::1]:8080", true, true},  {"[::1]:", true, true},
        {"[v1.x]", true, true},     {"[V1F.a:b]:1", true, true}, {"a%20b", true, true},
        {"a%2F", true, true},       {"a:b", true, false},        {"a:1:2", true, false},
        {"a:1a", true, false},      {"[::1", true, false},       {"[::1]x", true, false},
        {"[::1]:x", true, false},   {"[::g]", true, false},      {"[]", true, false},
        {"[v.x]", true, false},     {"[vx.y]", true, false},     {"[v1.]", true, false},
        {"[v1.a%20]", true, false}, {"[1.2.3.4]", true, false},  {"a]", true, false},
        {"a[b", true, false},       {"a%2", true, false},        {"a%zz", true, false},
        {"%", true, false},         {"[::1]:80]", true, false},  {"[[::1]]", true, false},
        {"a:80", false, false},     {"a", false, true},          {"[::1]", false, true},
        {"[::1]:80", false, false}, {"a:", false, false},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        const char *h = hosts[i].h;
        bool r = loom__h2chk_host_syntax((const uint8_t *)h, strlen(h), hosts[i].port);
        if (r != hosts[i].ok) {
            fprintf(stderr, "host \"%s\" (port %d): %d, want %d\n", h, hosts[i].port, r,
                    hosts[i].ok);
            return 1;
        }
        cases++;
    }

    /* After a userinfo too: a bad port is malformed, a good one is left
     * to the server's check (which answers 400 to the userinfo). */
    static const struct {
        const char *a;
        bool ok;
    } auths[] = {{"u@a:b", false},
                 {"u@a:1:2", false},
                 {"u:p@[::1]x", false},
                 {"u@a:80", true},
                 {"u:p@[::1]:80", true}};
    for (size_t i = 0; i < sizeof auths / sizeof auths[0]; i++) {
        for (int as_host = 0; as_host < 2; as_host++) {
            const char *a = auths[i].a;
            const char *why = field(as_host ? "host" : ":authority", as_host ? 4 : 10,
                                    (const uint8_t *)a, strlen(a), &k);
            CHECK_EQ(why == NULL, auths[i].ok);
            CHECK(!loom__h2chk_host_ok(&k, !as_host));
            cases++;
        }
    }

    printf("h2 check: %ld cases\n", cases);
    return 0;
}
