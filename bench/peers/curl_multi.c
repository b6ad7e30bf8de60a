/* bench/peers/curl_multi.c - the HTTP client peer: libcurl's multi interface
 * keeping P requests in flight on P easy handles. A finished handle is added
 * again at once, so it reuses its keep-alive connection from the multi
 * handle's connection cache.
 *
 * Usage: bench-curl-multi --parallel 64 --requests M [--cacert FILE] [--http2] URL
 * (https: the server's certificate is verified against FILE).
 * --http2: HTTP/2 multiplexing (CURLMOPT_PIPELINING = CURLPIPE_MULTIPLEX,
 * CURL_HTTP_VERSION_2TLS, CURLOPT_PIPEWAIT): the P transfers are streams of
 * ONE connection (CURLMOPT_MAX_HOST_CONNECTIONS 1), up to the server's
 * concurrent stream limit.
 * Prints {"requests":N,"seconds":S,"req_per_s":R,"errors":E}.
 */
#include <curl/curl.h>
#include <signal.h>

#include "bench.h"

static size_t discard(char *p, size_t size, size_t n, void *data)
{
    (void)p;
    (void)data;
    return size * n;
}

int main(int argc, char **argv)
{
    long parallel = bench_arg_long(argc, argv, "--parallel", 64);
    long total = bench_arg_long(argc, argv, "--requests", 100000);
    const char *cacert = bench_arg(argc, argv, "--cacert", NULL);
    int http2 = bench_flag(argc, argv, "--http2");
    const char *url = argc > 1 ? argv[argc - 1] : NULL;
    if (!url || strncmp(url, "http", 4) != 0 || parallel < 1 || total < parallel) {
        fprintf(stderr, "usage: bench-curl-multi --parallel P --requests M [--cacert FILE] "
                        "[--http2] URL\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, parallel);
    curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, http2 ? 1L : parallel);
    if (http2) {
        curl_multi_setopt(multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
        curl_multi_setopt(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, parallel);
    }
    CURL **easy = calloc((size_t)parallel, sizeof *easy);
    for (long i = 0; i < parallel; i++) {
        easy[i] = curl_easy_init();
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(easy[i], CURLOPT_TCP_NODELAY, 1L);
        if (cacert)
            curl_easy_setopt(easy[i], CURLOPT_CAINFO, cacert);
        /* SIGPIPE is ignored once below; without this libcurl saves and
         * restores its handler around every transfer (6 syscalls each). */
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        if (http2) {
            curl_easy_setopt(easy[i], CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
            curl_easy_setopt(easy[i], CURLOPT_PIPEWAIT, 1L);
        }
        curl_multi_add_handle(multi, easy[i]);
    }
    long started = parallel, done = 0, errors = 0;
    uint64_t t0 = bench_now_ns();
    int running = 1;
    while (done < total) {
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            if (msg->data.result != CURLE_OK)
                errors++;
            done++;
            curl_multi_remove_handle(multi, e);
            if (started < total) {
                started++;
                curl_multi_add_handle(multi, e);
            }
        }
        if (done < total && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
            break;
        if (errors > total / 10 + 100) {
            fprintf(stderr, "curl-multi: too many errors\n");
            break;
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"requests\":%ld,\"seconds\":%.3f,\"req_per_s\":%.0f,\"errors\":%ld}\n", done, secs,
           (double)(done - errors) / secs, errors);
    for (long i = 0; i < parallel; i++) {
        curl_multi_remove_handle(multi, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    free(easy);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
