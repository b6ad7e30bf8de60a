/* net/tls_internal.h - the TLS transport (net/tls.c) and its contexts
 * (net/tls_ctx.c), inside libloom. */
#ifndef LOOM_TLS_INTERNAL_H
#define LOOM_TLS_INTERNAL_H

#include <openssl/ssl.h>

#include "loom/tls.h"
#include "net/net_internal.h"

/* The TLS transport: per-socket state is one pointer (cls->tr_extra). */
extern const loom__transport loom__transport_tls;

/* Makes `cls` a TLS class: the transport, and for a server class a reference
 * to `ctx` (dropped with the class). */
void loom__class_set_tls(loom__sock_class *cls, loom_tls_ctx_t *ctx);

/* A client socket of a TLS class (not yet connected): its session, with the
 * name to send and verify (an address literal: checked against the
 * certificate's addresses, no SNI) and the port (the resumption key).
 * Returns 0, LOOM_EINVAL (not a TLS class, or a server context) or
 * LOOM_ENOMEM. */
int loom__tls_client_setup(loom_socket_t *s, loom_tls_ctx_t *ctx, const char *name, int port);

/* The ALPN list of the layer above a server connection (its class's), or
 * nothing (*list NULL). */
void loom__tls_layer_alpn(SSL *ssl, const unsigned char **list, size_t *len);
/* The context's ALPN list (wire format), or NULL. */
void loom__tls_ctx_alpn(const loom_tls_ctx_t *ctx, const unsigned char **list, size_t *len);
/* Whether a wire-format ALPN list holds the protocol p (plen bytes). */
bool loom__tls_alpn_has(const unsigned char *list, size_t len, const unsigned char *p,
                        unsigned plen);
/* OpenSSL's reason for its last error, for messages. */
void loom__tls_reason(char *buf, size_t len);
/* A client session for resumption under `key` ("host:port"; a new
 * reference), or NULL. */
SSL_SESSION *loom__tls_ctx_session(loom_tls_ctx_t *ctx, const char *key);
/* The resumption key of a client connection, or NULL. */
const char *loom__tls_session_key(SSL *ssl);
SSL_CTX *loom__tls_ctx_ssl(loom_tls_ctx_t *ctx);
/* OpenSSL's info callback of every context: notes a renegotiation the peer
 * asked for after the handshake (tls.c ends the connection). */
void loom__tls_info_cb(const SSL *ssl, int where, int ret);
uint32_t loom__tls_ctx_hs_ms(const loom_tls_ctx_t *ctx);

#endif
