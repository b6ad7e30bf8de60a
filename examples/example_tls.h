/* examples/example_tls.h - the --tls-cert/--tls-key options of the example
 * servers (loom-hello, loom-http-echo, loom-chat): the server context they
 * serve HTTPS with. */
#ifndef LOOM_EXAMPLE_TLS_H
#define LOOM_EXAMPLE_TLS_H

#include <stdio.h>
#include <stdlib.h>

#include "loom.h"

/* A server context from the PEM files `cert` (the chain, leaf first) and
 * `key`, with no ALPN list of its own: the HTTP server offers what it
 * speaks (h2, then http/1.1; see docs/HTTP2.md); NULL when both are NULL (plain HTTP). One
 * without the other is a usage mistake (exit 2), a context that cannot be
 * made is named with the reason (exit 1). */
static inline loom_tls_ctx_t *example_tls_server(const char *prog, const char *cert,
                                                 const char *key)
{
    if (cert == NULL && key == NULL)
        return NULL;
    if (cert == NULL || key == NULL) {
        fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", prog);
        exit(2);
    }
    loom_tls_ctx_t *ctx;
    char err[512];
    loom_tls_opts o = {.server = true, .cert = {.cert_file = cert, .key_file = key}};
    if (loom_tls_ctx_new(&o, &ctx, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        exit(1);
    }
    return ctx;
}

#endif
