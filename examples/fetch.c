/* loom-fetch - fetch a URL with loom's HTTP client, or load-test a server.
 *
 *   loom-fetch URL [-X METHOD] [-H 'Name: value']... [-d DATA | --data-file F]
 *              [-o FILE] [--timeout SECONDS] [-L | --location-trusted] [-i] [-v]
 *              [--cacert FILE] [-k | --insecure]
 *   loom-fetch --parallel N --requests M [options] URL
 *
 * https:// URLs are fetched over TLS, verified against the system's store
 * (or --cacert FILE; -k turns verification off), offering ALPN http/1.1;
 * -v also shows what the handshake negotiated ("* TLS ..." lines). Load mode
 * works over https too (connections are kept alive, so one handshake per
 * connection).
 *
 * curl's habits: --help lists every option on stdout; -v shows the request
 * and response heads on stderr ("> " and "< "); a URL without a scheme is
 * http://; a malformed URL is named with what is wrong with it (exit 3).
 * The body goes to stdout (or FILE) as it downloads, so memory stays flat for
 * any size; with stderr on a terminal a progress bar shows. Any failure (an
 * error event, or an HTTP status of 400 or more) exits non-zero with one line
 * on stderr saying what went wrong. Load mode keeps N requests in flight on
 * keep-alive connections until M have completed and prints throughput and
 * latency percentiles.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loom.h"
#include "loom/http_client.h"

static const char *prog = "loom-fetch";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void print_usage(FILE *f)
{
    fprintf(f,
            "usage: %s URL [-X METHOD] [-H 'Name: value']... [-d DATA | --data-file F]\n"
            "                  [-o FILE] [--timeout SECONDS] [-L | --location-trusted] [-i] [-v]\n"
            "                  [--cacert FILE] [-k | --insecure]\n"
            "       %s --parallel N --requests M [options] URL\n",
            prog, prog);
}

/* A usage mistake: the synopsis on stderr, exit 2. */
static void usage(void)
{
    print_usage(stderr);
    exit(2);
}

/* A usage mistake with a reason: one line and a hint on stderr, exit 2. */
static void bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (try '%s --help')\n", prog);
    va_end(ap);
    exit(2);
}

/* --help: every option with a line of description, on stdout, exit 0. */
static void help(void)
{
    print_usage(stdout);
    printf("\nFetches URL (http:// - the default when the URL has no scheme - or https://)\n"
           "with loom's HTTP client and writes the body to stdout.\n\n"
           "  -X, --request METHOD    the method (default GET, or POST with a body)\n"
           "  -H, --header 'N: v'     add a request header field (repeatable)\n"
           "  -d, --data DATA         send DATA as the request body\n"
           "      --data-file FILE    stream FILE as the request body\n"
           "  -o, --output FILE       write the body to FILE instead of stdout\n"
           "      --timeout SECONDS   give up after SECONDS in all\n"
           "  -L, --location          follow redirects; credentials are not sent to another\n"
           "                          origin\n"
           "      --location-trusted  follow redirects and keep credentials across origins\n"
           "  -i, --include           write the response head before the body\n"
           "  -v, --verbose           show the request and response heads on stderr, and for\n"
           "                          https the TLS version, cipher, ALPN and the server\n"
           "                          certificate's subject\n"
           "      --cacert FILE       https: trust the CA certificates in FILE (PEM) instead\n"
           "                          of the system's store\n"
           "  -k, --insecure          https: do not verify the server's certificate or name\n"
           "      --http2             HTTP/2: h2 by ALPN for https (the default already;\n"
           "                          HTTP/1.1 if the server does not choose it), h2c with\n"
           "                          prior knowledge for http\n"
           "      --http2-prior-knowledge  HTTP/2 without fallback (https: ALPN h2 only)\n"
           "      --http1.1           HTTP/1.1 only\n"
           "      --parallel N        load mode: keep N requests in flight (with HTTP/2, as\n"
           "                          streams of one connection)\n"
           "      --requests M        load mode: M requests in all, then print statistics\n"
           "  -h, --help              show this help and exit\n\n"
           "Exit status: 0 on success, 22 for an HTTP status of 400 or more, 3 for a\n"
           "malformed URL, 60 for a server certificate that does not verify, 35 for\n"
           "another TLS failure, 2 for a usage mistake, 1 for any other failure.\n");
    exit(0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- Options ----------------------------------------------------------------- */

static const char *url, *method, *data, *data_file, *out_path, *cacert;
static const char **hdrs;
static size_t nhdrs;
static double timeout_s;
static int follow, trusted, include_head, verbose, insecure;
static loom_tls_ctx_t *tls; /* the client context for https */
static long parallel, total_requests;
static loom_http_version_t version; /* --http2, --http1.1 (default: ALPN's choice) */

static void add_header(const char *line)
{
    const char *colon = strchr(line, ':');
    if (colon == NULL || colon == line)
        die("bad header '%s' (expected 'Name: value')", line);
    char *name = strndup(line, (size_t)(colon - line));
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    hdrs = realloc(hdrs, (nhdrs + 3) * sizeof *hdrs);
    if (name == NULL || hdrs == NULL)
        die("out of memory");
    hdrs[nhdrs++] = name;
    hdrs[nhdrs++] = v;
    hdrs[nhdrs] = NULL;
}

/* What is wrong with a URL loom's parser refused, in words. */
static const char *url_problem(const char *u)
{
    static char why[160];
    if (*u == '\0')
        return "empty URL";
    for (const char *p = u; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(why, sizeof why, "%s at offset %d",
                     *p == ' ' ? "a space" : "a control character", (int)(p - u));
            return why;
        }
    const char *sep = strstr(u, "://");
    for (const char *p = u; p < sep; p++)
        if (!(isalnum((unsigned char)*p) || ((*p == '+' || *p == '-' || *p == '.') && p > u))) {
            snprintf(why, sizeof why, "bad scheme '%.*s'", (int)(sep - u), u);
            return why;
        }
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    while (at && memchr(at + 1, '@', alen - (size_t)(at + 1 - auth)))
        at = memchr(at + 1, '@', alen - (size_t)(at + 1 - auth));
    const char *host = at ? at + 1 : auth;
    const char *end = auth + alen, *port = NULL;
    if (host < end && *host == '[') {
        const char *rb = memchr(host, ']', (size_t)(end - host));
        if (rb == NULL)
            return "missing ]";
        if (rb == host + 1)
            return "empty IPv6 address";
        if (rb + 1 < end && rb[1] != ':')
            return "junk after ]";
        port = rb + 1 < end ? rb + 1 : NULL;
    } else {
        port = memchr(host, ':', (size_t)(end - host));
        if ((port ? port : end) == host)
            return "no host";
        for (const char *p = host; p < (port ? port : end); p++)
            if (strchr("[]<>\"{}|\\^`%", *p)) {
                snprintf(why, sizeof why, "bad character '%c' in the host", *p);
                return why;
            }
    }
    if (port) {
        port++;
        long v = 0;
        const char *p = port;
        for (; p < end && isdigit((unsigned char)*p) && v <= 65535; p++)
            v = v * 10 + (*p - '0');
        if (p != end || p == port) {
            snprintf(why, sizeof why, "bad port '%.*s'", (int)(end - port), port);
            return why;
        }
        if (v == 0 || v > 65535) {
            snprintf(why, sizeof why, "port %.*s out of range", (int)(end - port), port);
            return why;
        }
    }
    return "not a valid URL";
}

/* A URL without a scheme means http:// (curl's habit); a malformed one is
 * named with its fault, exit 3 (curl's code for it). */
static void check_url(void)
{
    if (strstr(url, "://") == NULL) {
        char *u = malloc(strlen(url) + 8);
        if (u == NULL)
            die("out of memory");
        strcpy(u, "http://");
        strcat(u, url);
        url = u;
    }
    loom_url_t parsed;
    if (loom_url_parse(url, strlen(url), &parsed) < 0 || parsed.host_len == 0 ||
        loom_url_port(&parsed) <= 0) {
        fprintf(stderr, "%s: bad URL '%s': %s\n", prog, url, url_problem(url));
        exit(3);
    }
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
#define NEXT() (i + 1 < argc ? argv[++i] : (usage(), ""))
        if (strcmp(a, "-X") == 0 || strcmp(a, "--request") == 0)
            method = NEXT();
        else if (strcmp(a, "-H") == 0 || strcmp(a, "--header") == 0)
            add_header(NEXT());
        else if (strcmp(a, "-d") == 0 || strcmp(a, "--data") == 0)
            data = NEXT();
        else if (strcmp(a, "--data-file") == 0)
            data_file = NEXT();
        else if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0)
            out_path = NEXT();
        else if (strcmp(a, "--timeout") == 0)
            timeout_s = atof(NEXT());
        else if (strcmp(a, "-L") == 0 || strcmp(a, "--location") == 0)
            follow = 1;
        else if (strcmp(a, "--location-trusted") == 0)
            follow = trusted = 1;
        else if (strcmp(a, "-i") == 0 || strcmp(a, "--include") == 0)
            include_head = 1;
        else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0)
            verbose = 1;
        else if (strcmp(a, "--cacert") == 0)
            cacert = NEXT();
        else if (strcmp(a, "-k") == 0 || strcmp(a, "--insecure") == 0)
            insecure = 1;
        else if (strcmp(a, "--http2") == 0)
            version = LOOM_HTTP_VERSION_2;
        else if (strcmp(a, "--http2-prior-knowledge") == 0)
            version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
        else if (strcmp(a, "--http1.1") == 0)
            version = LOOM_HTTP_VERSION_1_1;
        else if (strcmp(a, "--parallel") == 0)
            parallel = atol(NEXT());
        else if (strcmp(a, "--requests") == 0)
            total_requests = atol(NEXT());
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            help();
        else if (a[0] == '-')
            bad_usage("unknown option '%s'", a);
        else if (url == NULL)
            url = a;
        else
            bad_usage("more than one URL");
#undef NEXT
    }
    if (url == NULL)
        usage();
    if (data && data_file)
        bad_usage("-d and --data-file exclude each other");
    if ((parallel > 0) != (total_requests > 0))
        bad_usage("load mode needs both --parallel N and --requests M");
    check_url();
}

/* The client context for https (a redirect may lead there from http too):
 * the system's store or --cacert, or no verification with -k. */
static void make_tls(void)
{
    char err[512];
    /* No ALPN list of its own: the client offers what the request's version
     * allows ("h2,http/1.1" by default). */
    loom_tls_opts o = {.ca_file = cacert, .insecure = insecure};
    if (loom_tls_ctx_new(&o, &tls, err, sizeof err) < 0)
        die("%s", err);
}

/* -v: what the handshake of an https request negotiated, "* " lines. */
static void print_tls(loom_http_client_req_t *req)
{
    loom_tls_info info;
    if (loom_http_client_tls_info(req, &info) < 0)
        return;
    fprintf(stderr, "* TLS: %s, cipher %s, ALPN %.*s%s\n", info.version, info.cipher,
            (int)info.alpn_len, info.alpn ? info.alpn : "", info.alpn ? "" : "(none)");
    fprintf(stderr, "* server certificate: %s%s\n",
            info.peer_subject[0] ? info.peer_subject : "(none)",
            info.peer_verified ? "" : " (not verified)");
}

/* --- Single fetch ------------------------------------------------------------- */

static FILE *out;
static int out_fd = -1;
static int failed;
static char fail_msg[600];
static int status;
static uint64_t received, expected;
static int have_expected;
static int progress;
static double started, last_draw;

static void draw_progress(int final)
{
    double t = now_s();
    if (!final && t - last_draw < 0.1)
        return;
    last_draw = t;
    double rate = received / ((t - started) > 1e-6 ? (t - started) : 1e-6);
    char bar[41];
    if (have_expected && expected > 0) {
        int fill = (int)(40.0 * (double)received / (double)expected);
        if (fill > 40)
            fill = 40;
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, ' ', (size_t)(40 - fill));
        bar[40] = '\0';
        fprintf(stderr, "\r[%s] %3d%% %.1f/%.1f MiB %.1f MiB/s ", bar,
                (int)(100.0 * (double)received / (double)expected), received / 1048576.0,
                expected / 1048576.0, rate / 1048576.0);
    } else {
        fprintf(stderr, "\r%.1f MiB %.1f MiB/s ", received / 1048576.0, rate / 1048576.0);
    }
    if (final)
        fputc('\n', stderr);
}

/* -v: the request head as sent, one "> " line per line. */
static void print_request(loom_http_client_req_t *req)
{
    size_t len;
    const char *h = loom_http_client_request_head(req, &len);
    while (h && len > 2) {
        const char *e = memchr(h, '\n', len);
        size_t n = e ? (size_t)(e - h) + 1 : len;
        size_t t = n >= 2 && h[n - 2] == '\r' ? n - 2 : n;
        fprintf(stderr, "> %.*s\n", (int)t, h);
        h += n;
        len -= n;
    }
    fprintf(stderr, ">\n");
}

/* The response head: raw (CRLF) for -i, "< " lines for -v. */
static void print_head(FILE *f, const char *prefix, const loom_http_client_response_t *res)
{
    const char *eol = *prefix ? "\n" : "\r\n";
    if (loom_http_client_response_version(res) == 20)
        fprintf(f, "%sHTTP/2 %d%s", prefix, res->status, eol);
    else
        fprintf(f, "%sHTTP/1.%d %d %s%s", prefix, res->minor_version, res->status, res->reason,
                eol);
    for (size_t i = 0; i < res->nheaders; i++)
        fprintf(f, "%s%s: %s%s", prefix, res->headers[i].name, res->headers[i].value, eol);
    fprintf(f, "%s%s", *prefix ? "<" : "", eol);
}

static void on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res, void *d)
{
    (void)d;
    status = res->status;
    size_t len;
    const char *cl = loom_http_client_header(res, "content-length", &len);
    if (cl) {
        expected = strtoull(cl, NULL, 10);
        have_expected = 1;
    }
    if (verbose) {
        if (res->redirects)
            print_request(req); /* the hop that answered */
        print_tls(req);
        int v = loom_http_client_response_version(res);
        fprintf(stderr, "* HTTP version: %s\n",
                v == 20   ? "HTTP/2"
                : v == 10 ? "HTTP/1.0"
                          : "HTTP/1.1");
        print_head(stderr, "< ", res);
    }
    if (include_head)
        print_head(out, "", res);
}

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *d)
{
    (void)req;
    (void)d;
    if (fwrite(chunk, 1, len, out) != len) {
        snprintf(fail_msg, sizeof fail_msg, "cannot write the output: %s", strerror(errno));
        failed = 1;
        loom_http_client_cancel(req);
        return 0;
    }
    received += len;
    if (progress)
        draw_progress(0);
    return 0;
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *d)
{
    (void)req;
    (void)d;
    status = res->status;
    if (progress)
        draw_progress(1);
    if (res->status >= 400) {
        failed = 22;
        snprintf(fail_msg, sizeof fail_msg, "HTTP %d %.*s from %s", res->status,
                 (int)res->reason_len, res->reason, res->url);
    }
}

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (progress && received)
        fputc('\n', stderr);
    failed = ev->kind == LOOM_EV_TLS_VERIFY_ERROR ? 60 : ev->kind == LOOM_EV_TLS_ERROR ? 35 : 1;
    snprintf(fail_msg, sizeof fail_msg, "%s: %s", loom_event_kind_name(ev->kind), ev->msg);
}

static ssize_t file_source(loom_http_client_req_t *req, char *buf, size_t size, void *d)
{
    (void)req;
    (void)d;
    ssize_t n = read(out_fd, buf, size);
    return n < 0 ? loom_err_from_errno(errno) : n;
}

static int file_rewind(loom_http_client_req_t *req, void *d)
{
    (void)req;
    (void)d;
    return lseek(out_fd, 0, SEEK_SET) == 0 ? 0 : loom_err_from_errno(errno);
}

static loom_http_request_opts base_opts(void)
{
    loom_http_request_opts o = {
        .method = method,
        .headers = hdrs,
        .follow_redirects = follow,
        .redirect_keep_credentials = trusted,
        .total_timeout_ms = timeout_s > 0 ? (uint32_t)(timeout_s * 1000) : 0,
        .tls = tls,
        .version = version,
    };
    if (data) {
        o.body = data;
        o.body_len = strlen(data);
    }
    return o;
}

static int fetch_one(loom_loop_t *loop)
{
    out = stdout;
    if (out_path) {
        out = fopen(out_path, "wb");
        if (out == NULL)
            die("cannot open %s: %s", out_path, strerror(errno));
    }
    loom_http_request_opts o = base_opts();
    o.on_headers = on_headers;
    o.on_body = on_body;
    o.on_response = on_response;
    o.on_event = on_event;
    if (data_file) {
        out_fd = open(data_file, O_RDONLY | O_CLOEXEC);
        struct stat stt;
        if (out_fd < 0 || fstat(out_fd, &stt) < 0)
            die("cannot read %s: %s", data_file, strerror(errno));
        o.on_body_source = file_source;
        o.on_body_rewind = file_rewind;
        o.body_length = stt.st_size;
    }
    progress = isatty(2) && !verbose;
    started = now_s();
    loom_http_client_req_t *req;
    int rc = loom_http_request(loop, url, &o, &req);
    if (rc < 0)
        die("cannot fetch '%s': %s", url, loom_strerror(rc));
    if (verbose)
        print_request(req);
    rc = loom_run(loop, LOOM_RUN_DEFAULT);
    if (rc < 0 && !failed)
        die("loop error: %s", loom_strerror(rc));
    if (fflush(out) != 0 || (out != stdout && fclose(out) != 0))
        die("cannot write the output: %s", strerror(errno));
    if (out_fd >= 0)
        close(out_fd);
    if (failed) {
        fprintf(stderr, "%s: %s\n", prog, fail_msg);
        return failed;
    }
    return 0;
}

/* --- Load mode ------------------------------------------------------------------ */

static long started_n, completed, errors;
/* Responses by the protocol that answered them: HTTP/2, HTTP/1.1, HTTP/1.0. */
static long n_h2, n_h11, n_h10;
static double *lat;
static double t_start;
static loom_loop_t *lloop;
static char first_error[600];

typedef struct {
    double t0;
} slot_t;

static void load_next(slot_t *s);

static void load_done(slot_t *s)
{
    double t = now_s();
    lat[completed++] = t - s->t0;
    if (started_n < total_requests)
        load_next(s);
}

static void load_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                          void *d)
{
    (void)req;
    int v = loom_http_client_response_version(res);
    if (v == 20)
        n_h2++;
    else if (v == 10)
        n_h10++;
    else
        n_h11++;
    if (res->status >= 400 && !errors++)
        snprintf(first_error, sizeof first_error, "HTTP %d", res->status);
    load_done(d);
}

static void load_event(const loom_event_t *ev, void *d)
{
    if (!errors++)
        snprintf(first_error, sizeof first_error, "%s: %s", loom_event_kind_name(ev->kind),
                 ev->msg);
    load_done(d);
}

static loom_http_request_opts load_opts;

static void load_next(slot_t *s)
{
    started_n++;
    s->t0 = now_s();
    load_opts.data = s;
    int rc = loom_http_request(lloop, url, &load_opts, NULL);
    if (rc < 0)
        die("cannot fetch '%s': %s", url, loom_strerror(rc));
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int load(loom_loop_t *loop)
{
    lloop = loop;
    int rc = loom_http_client_configure(loop,
                                        &(loom_http_client_opts){.max_per_host = (uint32_t)parallel,
                                                                 .max_idle = (uint32_t)parallel});
    if (rc < 0)
        die("cannot configure the client: %s", loom_strerror(rc));
    lat = malloc((size_t)total_requests * sizeof *lat);
    slot_t *slots = calloc((size_t)parallel, sizeof *slots);
    if (lat == NULL || slots == NULL)
        die("out of memory");
    load_opts = base_opts();
    load_opts.on_response = load_response;
    load_opts.on_event = load_event;
    t_start = now_s();
    for (long i = 0; i < parallel && started_n < total_requests; i++)
        load_next(&slots[i]);
    rc = loom_run(loop, LOOM_RUN_DEFAULT);
    double el = now_s() - t_start;
    if (rc < 0)
        die("loop error: %s", loom_strerror(rc));
    qsort(lat, (size_t)completed, sizeof *lat, cmp_d);
#define PCT(p) (completed ? lat[(size_t)((double)(completed - 1) * (p))] * 1000.0 : 0.0)
    printf("requests: %ld, time: %.3f s, req/s: %.0f, p50: %.3f ms, p90: %.3f ms, p99: %.3f ms, "
           "max: %.3f ms",
           completed, el, completed / (el > 0 ? el : 1e-9), PCT(0.5), PCT(0.9), PCT(0.99),
           PCT(1.0));
#undef PCT
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    /* The protocol the responses came with: one name when they all agree,
     * the counts when they differ (a server that chose differently per
     * connection), "none" when no response came (every request failed). */
    printf(", errors: %ld, connections: %" PRIu64 ", version: ", errors, st.connections);
    int kinds = (n_h2 > 0) + (n_h11 > 0) + (n_h10 > 0);
    if (kinds == 0)
        printf("none\n");
    else if (kinds == 1)
        printf("%s\n", n_h2 ? "HTTP/2" : n_h11 ? "HTTP/1.1" : "HTTP/1.0");
    else
        printf("mixed (HTTP/2: %ld, HTTP/1.1: %ld, HTTP/1.0: %ld)\n", n_h2, n_h11, n_h10);
    free(lat);
    free(slots);
    if (errors) {
        fprintf(stderr, "%s: %ld of %ld requests failed (first: %s)\n", prog, errors, completed,
                first_error);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    loom_loop_t *loop;
    int rc = loom_loop_new(&loop, NULL);
    if (rc < 0)
        die("cannot create the loop: %s", loom_strerror(rc));
    make_tls();
    rc = parallel > 0 ? load(loop) : fetch_one(loop);
    loom_http_client_close_idle(loop);
    loom_loop_free(loop);
    loom_tls_ctx_free(tls);
    return rc;
}
