/* loom/tls.h - TLS on OpenSSL 3: contexts, TLS sockets, STARTTLS and what a
 * handshake negotiated.
 *
 * TLS is a layer of the socket: a TLS socket has the whole socket API of
 * loom/tcp.h (read callbacks, write, writev, write_ref, the water marks and
 * on_drain, timeouts, enable and disable, close, abort), with plaintext
 * above and records on the wire. The HTTP server and client, and later
 * WebSocket and HTTP/2, use it without knowing (loom/http.h and
 * loom/http_client.h take the same context).
 *
 *   loom_tls_ctx_t *ctx;
 *   char err[256];
 *   loom_tls_ctx_new(&(loom_tls_opts){.server = true,
 *                                     .cert = {.cert_file = "cert.pem",
 *                                              .key_file = "key.pem"}},
 *                    &ctx, err, sizeof err);
 *   loom_tcp_server(loop, "127.0.0.1", 8443, &(loom_tcp_server_opts){.tls = ctx, ...}, &srv);
 *   loom_tls_ctx_free(ctx); // the server keeps its own reference
 *
 * Contexts are reference counted and not tied to a loop: one context serves
 * any number of sockets, servers and loops (threads) at once. Every socket
 * and server that uses one holds a reference, so the creator may free its
 * own as soon as it has handed the context over.
 *
 * Connections: a client's on_connect, and a server's on_connect (accept),
 * run only once the handshake is done; a failed handshake is one event (a
 * "tls error", a "tls verify error" for certificate problems, or a "tcp
 * timeout" when the handshake timeout passed) and one close, and the
 * application never saw the socket as connected. Writes made before that
 * (a connect's initial bytes) are held and sent, encrypted, after it.
 *
 * Ends: loom_socket_close() sends close_notify after the queued bytes, and
 * loom_socket_shutdown() sends it before the write side's FIN. A peer's
 * close_notify is the clean end (a "tcp eof" event). A peer that closes the
 * connection without close_notify may be cutting the stream short (an
 * attacker can forge a FIN): that is a "tls error" event ("closed without
 * close_notify: truncated"), never a clean end, so that a protocol which
 * frames by the end of the stream cannot be fooled.
 *
 * Renegotiation is refused: a peer that asks for one (TLS 1.2) gets the
 * no_renegotiation warning and the connection ends with a "tls error"
 * ("renegotiation refused").
 *
 * loom_socket_fd() on a TLS socket is for socket options only: reading or
 * writing the fd directly would corrupt the TLS stream.
 *
 * Memory: an idle TLS connection holds no record buffer
 * (SSL_MODE_RELEASE_BUFFERS) and no read block; after its handshake it costs
 * a server about 15 KiB of user-space memory, almost all of it OpenSSL's
 * session state (a plain TCP connection: under 1 KiB). tests/tls/
 * test_tls_idle measures it.
 *
 * kTLS: loom does not enable kernel TLS (SSL_OP_ENABLE_KTLS): every record
 * goes through OpenSSL in user space. See docs/TLS.md.
 */
#ifndef LOOM_TLS_H
#define LOOM_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loom/common.h"
#include "loom/tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_tls_ctx loom_tls_ctx_t;

/* Protocol versions for loom_tls_opts.min_version. */
enum { LOOM_TLS_V1_2 = 0x0303, LOOM_TLS_V1_3 = 0x0304 };

/* Client certificate checks of a server (loom_tls_opts.verify_client). */
enum {
    LOOM_TLS_VERIFY_NONE = 0, /* no certificate asked for (the default) */
    LOOM_TLS_VERIFY_OPTIONAL, /* asked for and verified if sent */
    LOOM_TLS_VERIFY_REQUIRED  /* the handshake fails without a valid one */
};

/* A certificate chain and its private key, from PEM files or from PEM text
 * in memory (the *_pem fields; a length of 0 means NUL-terminated). The
 * chain file holds the leaf certificate first, then its intermediates. */
typedef struct loom_tls_cert {
    const char *cert_file;
    const char *key_file;
    const char *cert_pem;
    size_t cert_pem_len;
    const char *key_pem;
    size_t key_pem_len;
} loom_tls_cert;

/* Options of a context; a zeroed struct (plus a certificate for a server)
 * gives the defaults, chosen to be safe. */
typedef struct loom_tls_opts {
    /* A server context (accepts) or a client context (connects). */
    bool server;
    /* Server: its certificate (required). Client: a client certificate to
     * present when the server asks (optional). */
    loom_tls_cert cert;
    /* Server: more certificates, chosen by the name the client asks for
     * (SNI) against each certificate's names (subjectAltName DNS entries,
     * wildcards included, else its common name); `cert` serves every other
     * name and clients that send none. */
    const loom_tls_cert *sni_certs;
    size_t sni_count;
    /* Trust anchors. Client: the certificates a server's chain must lead to;
     * with neither set, the system's store (SSL_CTX_set_default_verify_paths).
     * Server: the CAs a client certificate must lead to (verify_client). */
    const char *ca_file;
    const char *ca_path;
    /* Client: do not verify the server's certificate or name. Never the
     * default; for tests and known endpoints only. */
    bool insecure;
    /* Server: LOOM_TLS_VERIFY_NONE (default), _OPTIONAL or _REQUIRED. */
    int verify_client;
    /* ALPN protocols in order of preference, comma-separated ("h2,http/1.1").
     * A server picks its most preferred protocol that the client offers
     * (and that the layer above speaks, e.g. the HTTP server's h2 and
     * http/1.1); when they share none the handshake fails with the fatal
     * no_application_protocol alert (RFC 7301 section 3.2) and a tls error
     * event naming the client. A client that offers no ALPN connects; a
     * server with no list here and none from its layer ignores ALPN. A
     * client offers them. NULL: none. */
    const char *alpn;
    /* Lowest version allowed: LOOM_TLS_V1_2 (0 means this) or
     * LOOM_TLS_V1_3. TLS 1.0 and 1.1 are never allowed. */
    int min_version;
    /* Cipher choices in OpenSSL's syntax; NULL: OpenSSL's defaults.
     * ciphers: TLS 1.2 (SSL_CTX_set_cipher_list); ciphersuites: TLS 1.3
     * (SSL_CTX_set_ciphersuites). */
    const char *ciphers;
    const char *ciphersuites;
    /* Server: no session tickets (resumption then uses the session cache
     * only). Tickets are on by default, encrypted with a key that is
     * replaced every ticket_rotate_s seconds (0: 3600); a ticket made with the
     * previous key is still accepted (and renewed) for one more period. */
    bool no_tickets;
    uint32_t ticket_rotate_s;
    /* Server: entries of its session cache (0: 20480). Client: sessions kept
     * for resumption, one per host and port (0: 256). */
    uint32_t session_cache_size;
    /* A handshake not done this long after the connection is up fails with
     * a tcp timeout event. 0: 10000. */
    uint32_t handshake_timeout_ms;
} loom_tls_opts;

/* Creates a context from `opts`: loads and checks the certificates and keys
 * (a key that does not match its certificate is an error), the trust anchors
 * and the settings. On failure, if `err` is not NULL, writes a message there
 * naming what failed and OpenSSL's reason ("cannot load certificate
 * cert.pem: No such file or directory"). Returns 0, LOOM_EINVAL (bad
 * options), LOOM_ETLS (OpenSSL refused something: see err) or
 * LOOM_ENOMEM. Thread-safe. */
LOOM_EXTERN int loom_tls_ctx_new(const loom_tls_opts *opts, loom_tls_ctx_t **out, char *err,
                                 size_t err_len);

/* Takes one more reference to `ctx`. Thread-safe. */
LOOM_EXTERN void loom_tls_ctx_ref(loom_tls_ctx_t *ctx);

/* Drops a reference; the context is freed with the last one (sockets and
 * servers hold theirs until they close). NULL is ignored. Thread-safe. */
LOOM_EXTERN void loom_tls_ctx_free(loom_tls_ctx_t *ctx);

/* Whether the context is a server's. */
LOOM_EXTERN bool loom_tls_ctx_is_server(const loom_tls_ctx_t *ctx);

/* What a handshake negotiated. The strings are owned by the socket and valid
 * while it is open. */
typedef struct loom_tls_info {
    const char *version;    /* "TLSv1.3" */
    const char *cipher;     /* "TLS_AES_128_GCM_SHA256" */
    const char *alpn;       /* the ALPN protocol (not NUL-terminated), or NULL */
    size_t alpn_len;        /* its length, 0 if none */
    const char *sni;        /* the server name the client sent, or NULL */
    bool resumed;           /* the session was resumed (ticket or cache) */
    bool peer_verified;     /* the peer presented a certificate that verified */
    char peer_subject[256]; /* the peer certificate's subject, one line
                             * ("CN=localhost"); "" when it sent none */
} loom_tls_info;

/* Whether `sock` is a TLS socket (from a TLS connect or server, or after
 * loom_socket_starttls()). */
LOOM_EXTERN bool loom_socket_is_tls(const loom_socket_t *sock);

/* Fills `info` with what the handshake of `sock` negotiated. Returns 0,
 * LOOM_EPROTOCOL (not a TLS socket), LOOM_ESTATE (the handshake is not done)
 * or LOOM_ECLOSED. */
LOOM_EXTERN int loom_socket_tls_info(const loom_socket_t *sock, loom_tls_info *info);

/* Options of loom_socket_starttls(). */
typedef struct loom_tls_start_opts {
    /* Client: the name to send (SNI) and to verify the certificate against;
     * NULL: the host the socket connected to (an address literal is checked
     * against the certificate's IP addresses and sent as no SNI). */
    const char *server_name;
    /* The handshake is done: the socket is secure (it runs instead of
     * on_connect, which ran for the plain connection). A failure is one
     * event and the close, as for a TLS connect. May be NULL. */
    loom_socket_cb on_secure;
} loom_tls_start_opts;

/* Upgrades the open plain connection `sock` to TLS in place (STARTTLS, as in
 * SMTP, IMAP, Postgres or Redis): the same socket, its callbacks, data slot,
 * timeouts and marks, with a TLS session under them. The role is the
 * context's: a client context starts a client handshake, a server context
 * waits for the client's. Call it once the plain exchange is over: every
 * byte the peer sent before its handshake must have been read (a protocol
 * that asks "STARTTLS" and waits for an answer ensures that), and bytes
 * queued before the call go out in the clear first. Writes made during the
 * handshake are held and sent encrypted after it. Returns 0, LOOM_EINVAL,
 * LOOM_ECLOSED, LOOM_ESTATE (still connecting, already TLS, or a socket of
 * the HTTP layer) or LOOM_ENOMEM. */
LOOM_EXTERN int loom_socket_starttls(loom_socket_t *sock, loom_tls_ctx_t *ctx,
                                     const loom_tls_start_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
