/* net/tls_ctx.c - TLS contexts (loom/tls.h) on OpenSSL 3: certificates and
 * keys, trust anchors, SNI, ALPN, session tickets with key rotation, the
 * server's session cache and the client's sessions for resumption. A
 * context is reference counted and shared by sockets, servers and threads;
 * the per-connection transport is net/tls.c.
 */
#include <arpa/inet.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/tls_internal.h"

#define TLS_DEFAULT_HS_MS      10000
#define TLS_DEFAULT_ROTATE_S   3600
#define TLS_DEFAULT_SRV_CACHE  20480
#define TLS_DEFAULT_CLI_CACHE  256
#define TLS_SESSION_ID_CONTEXT "loom"

/* A session ticket key: its name (sent in the ticket), AES and HMAC keys. */
typedef struct tls_tkey {
    unsigned char name[16], aes[32], hmac[32];
    time_t made;
} tls_tkey;

/* A client session kept for resumption, per "host:port". */
typedef struct tls_sess {
    char key[300];
    SSL_SESSION *sess;
    uint64_t used;
} tls_sess;

struct loom_tls_ctx {
    atomic_uint refs;
    bool server;
    SSL_CTX *ssl;
    SSL_CTX **sni; /* server: one context per extra certificate */
    size_t nsni;
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    uint32_t hs_ms;
    pthread_mutex_t lock; /* the ticket keys and the client sessions */
    tls_tkey keys[2];     /* [0] current, [1] previous (or unused) */
    int nkeys;
    uint32_t rotate_s;
    tls_sess *sess; /* client: max_sess entries */
    size_t max_sess;
    uint64_t tick;
};

/* --- Messages -------------------------------------------------------------------- */

void loom__tls_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r == NULL && e)
        r = ERR_lib_error_string(e);
    snprintf(buf, len, "%s", r ? r : "unknown reason");
}

static int ctx_err(char *err, size_t err_len, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ctx_err(char *err, size_t err_len, int code, const char *fmt, ...)
{
    if (err && err_len) {
        char what[256], why[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        loom__tls_reason(why, sizeof why);
        if (code == LOOM_ETLS)
            snprintf(err, err_len, "%s: %s", what, why);
        else
            snprintf(err, err_len, "%s", what);
    }
    ERR_clear_error();
    return code;
}

/* --- Certificates ------------------------------------------------------------------ */

static int load_cert(SSL_CTX *c, const loom_tls_cert *cert, char *err, size_t err_len)
{
    if (cert->cert_file) {
        if (SSL_CTX_use_certificate_chain_file(c, cert->cert_file) != 1)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load certificate %s", cert->cert_file);
    } else if (cert->cert_pem) {
        size_t n = cert->cert_pem_len ? cert->cert_pem_len : strlen(cert->cert_pem);
        BIO *b = BIO_new_mem_buf(cert->cert_pem, (int)n);
        if (b == NULL)
            return LOOM_ENOMEM;
        X509 *x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
        int ok = x && SSL_CTX_use_certificate(c, x) == 1;
        X509_free(x);
        while (ok) {
            X509 *ca = PEM_read_bio_X509(b, NULL, NULL, NULL);
            if (ca == NULL)
                break;
            if (SSL_CTX_add0_chain_cert(c, ca) != 1) {
                X509_free(ca);
                ok = 0;
            }
        }
        BIO_free(b);
        if (!ok)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load the certificate (PEM in memory)");
        ERR_clear_error(); /* the end of the chain reads as an error */
    } else {
        return 0;
    }
    if (cert->key_file) {
        if (SSL_CTX_use_PrivateKey_file(c, cert->key_file, SSL_FILETYPE_PEM) != 1)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load private key %s", cert->key_file);
    } else if (cert->key_pem) {
        size_t n = cert->key_pem_len ? cert->key_pem_len : strlen(cert->key_pem);
        BIO *b = BIO_new_mem_buf(cert->key_pem, (int)n);
        if (b == NULL)
            return LOOM_ENOMEM;
        EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
        BIO_free(b);
        int ok = k && SSL_CTX_use_PrivateKey(c, k) == 1;
        EVP_PKEY_free(k);
        if (!ok)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load the private key (PEM in memory)");
    } else {
        return ctx_err(err, err_len, LOOM_EINVAL, "a certificate needs its private key");
    }
    if (SSL_CTX_check_private_key(c) != 1)
        return ctx_err(err, err_len, LOOM_ETLS, "the private key does not match the certificate %s",
                       cert->cert_file ? cert->cert_file : "(PEM in memory)");
    return 0;
}

/* --- ALPN ---------------------------------------------------------------------------- */

/* "h2,http/1.1" to the wire format. Returns 0 or LOOM_EINVAL/LOOM_ENOMEM. */
static int alpn_wire(const char *list, unsigned char **out, size_t *out_len)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (w == NULL)
        return LOOM_ENOMEM;
    size_t k = 0;
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > 255) {
            free(w);
            return LOOM_EINVAL;
        }
        w[k++] = (unsigned char)len;
        memcpy(w + k, p, len);
        k += len;
        p += len;
        if (*p == ',')
            p++;
    }
    *out = w;
    *out_len = k;
    return 0;
}

void loom__tls_ctx_alpn(const loom_tls_ctx_t *ctx, const unsigned char **list, size_t *len)
{
    *list = ctx->alpn;
    *len = ctx->alpn ? ctx->alpn_len : 0;
}

bool loom__tls_alpn_has(const unsigned char *list, size_t len, const unsigned char *p,
                        unsigned plen)
{
    for (size_t i = 0; i < len && i + 1u + list[i] <= len; i += 1u + list[i])
        if (list[i] == plen && memcmp(list + i + 1, p, plen) == 0)
            return true;
    return false;
}

/* The server's choice: its most preferred protocol the client offers. The
 * preference is the context's list, or else the list of the layer above
 * (the socket class: an HTTPS server offers http/1.1 without being told);
 * a protocol of the context's that the layer does not speak is never
 * chosen. Nothing in common: the handshake fails with the fatal
 * no_application_protocol alert (RFC 7301 section 3.2: the server "SHALL"
 * send it; nginx does since 1.21.4), reported as a tls error naming the
 * client. A server with no list at all (neither the context nor the layer
 * names a protocol) does not take part in ALPN: it goes on without. (This
 * is only called when the client offered ALPN: a client that offers none
 * connects.) */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    loom_tls_ctx_t *ctx = arg;
    const unsigned char *layer = NULL;
    size_t layer_len = 0;
    loom__tls_layer_alpn(ssl, &layer, &layer_len);
    const unsigned char *pref = ctx->alpn ? ctx->alpn : layer;
    size_t pref_len = ctx->alpn ? ctx->alpn_len : layer_len;
    for (size_t i = 0; pref && i < pref_len && i + 1u + pref[i] <= pref_len; i += 1u + pref[i]) {
        const unsigned char *mine = pref + i + 1;
        unsigned mlen = pref[i];
        if (layer && pref != layer && !loom__tls_alpn_has(layer, layer_len, mine, mlen))
            continue;
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (j + 1u + in[j] > inlen)
                break;
            if (in[j] == mlen && memcmp(in + j + 1, mine, mlen) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return pref ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

/* --- SNI ------------------------------------------------------------------------------ */

static int sni_select(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    loom_tls_ctx_t *ctx = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < ctx->nsni; i++) {
        X509 *leaf = SSL_CTX_get0_certificate(ctx->sni[i]);
        if (leaf && X509_check_host(leaf, name, 0, 0, NULL) == 1) {
            SSL_set_SSL_CTX(ssl, ctx->sni[i]);
            break;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* --- Session tickets --------------------------------------------------------------- */

static int tkey_new(tls_tkey *k)
{
    if (RAND_bytes(k->name, sizeof k->name) != 1 || RAND_bytes(k->aes, sizeof k->aes) != 1 ||
        RAND_bytes(k->hmac, sizeof k->hmac) != 1)
        return -1;
    k->made = time(NULL);
    return 0;
}

static int tkey_mac(EVP_MAC_CTX *hctx, tls_tkey *k)
{
    OSSL_PARAM p[3];
    p[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k->hmac, sizeof k->hmac);
    p[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    p[2] = OSSL_PARAM_construct_end();
    return EVP_MAC_CTX_set_params(hctx, p) == 1 ? 0 : -1;
}

/* OpenSSL's ticket key callback: encrypt with the current key (made anew
 * once rotate_s has passed), decrypt with the current or the previous one
 * (for one more period), always asking for a renewal. */
static int ticket_cb(SSL *ssl, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                     EVP_CIPHER_CTX *ectx, EVP_MAC_CTX *hctx, int enc)
{
    loom_tls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (ctx == NULL)
        return -1;
    int rc = -1;
    pthread_mutex_lock(&ctx->lock);
    time_t now = time(NULL);
    if (ctx->nkeys == 0 || now - ctx->keys[0].made >= (time_t)ctx->rotate_s) {
        tls_tkey k;
        if (tkey_new(&k) == 0) {
            if (ctx->nkeys)
                ctx->keys[1] = ctx->keys[0];
            ctx->keys[0] = k;
            ctx->nkeys = ctx->nkeys ? 2 : 1;
        }
    }
    if (enc) {
        tls_tkey *k = &ctx->keys[0];
        if (ctx->nkeys && RAND_bytes(iv, 16) == 1 && tkey_mac(hctx, k) == 0 &&
            EVP_EncryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1) {
            memcpy(key_name, k->name, 16);
            rc = 1;
        }
    } else {
        rc = 0; /* unknown key: a full handshake */
        for (int i = 0; i < ctx->nkeys; i++) {
            tls_tkey *k = &ctx->keys[i];
            if (memcmp(key_name, k->name, 16) != 0)
                continue;
            /* The previous key is good for one more period. */
            if (i == 1 && now - k->made >= 2 * (time_t)ctx->rotate_s)
                break;
            /* 2: good, and renew it: a TLS 1.3 client uses each ticket
             * once, so a resumed connection hands it a fresh one. */
            if (tkey_mac(hctx, k) == 0 &&
                EVP_DecryptInit_ex(ectx, EVP_aes_256_cbc(), NULL, k->aes, iv) == 1)
                rc = 2;
            else
                rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

/* --- Client sessions ----------------------------------------------------------------- */

static int sess_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    const char *key = loom__tls_session_key(ssl);
    loom_tls_ctx_t *ctx = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (key == NULL || ctx == NULL || ctx->max_sess == 0)
        return 0;
    pthread_mutex_lock(&ctx->lock);
    tls_sess *slot = NULL, *oldest = NULL;
    for (size_t i = 0; i < ctx->max_sess; i++) {
        tls_sess *e = &ctx->sess[i];
        if (e->sess && strcmp(e->key, key) == 0) {
            slot = e;
            break;
        }
        if (e->sess == NULL) {
            if (slot == NULL)
                slot = e;
        } else if (oldest == NULL || e->used < oldest->used) {
            oldest = e;
        }
    }
    if (slot == NULL)
        slot = oldest;
    if (slot->sess)
        SSL_SESSION_free(slot->sess);
    snprintf(slot->key, sizeof slot->key, "%s", key);
    slot->sess = sess;
    slot->used = ++ctx->tick;
    pthread_mutex_unlock(&ctx->lock);
    return 1; /* the reference is ours */
}

SSL_SESSION *loom__tls_ctx_session(loom_tls_ctx_t *ctx, const char *key)
{
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&ctx->lock);
    for (size_t i = 0; i < ctx->max_sess; i++) {
        tls_sess *e = &ctx->sess[i];
        if (e->sess && strcmp(e->key, key) == 0) {
            if (SSL_SESSION_is_resumable(e->sess)) {
                s = e->sess;
                SSL_SESSION_up_ref(s);
                e->used = ++ctx->tick;
            }
            break;
        }
    }
    pthread_mutex_unlock(&ctx->lock);
    return s;
}

/* --- Contexts ------------------------------------------------------------------------- */

/* The settings every SSL_CTX of the context shares (SNI contexts too: the
 * connection moves to one of them in mid-handshake). */
static int ctx_setup(loom_tls_ctx_t *ctx, SSL_CTX *c, const loom_tls_opts *o, char *err,
                     size_t err_len)
{
    SSL_CTX_set_app_data(c, ctx);
    int min = o->min_version == LOOM_TLS_V1_3 ? TLS1_3_VERSION : TLS1_2_VERSION;
    if (o->min_version && o->min_version != LOOM_TLS_V1_2 && o->min_version != LOOM_TLS_V1_3)
        return ctx_err(err, err_len, LOOM_EINVAL, "min_version must be TLS 1.2 or 1.3");
    SSL_CTX_set_min_proto_version(c, min);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (o->server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    /* No chain building per handshake (OpenSSL's default runs a certificate
     * verification on every handshake that sends a certificate): the chain
     * sent is the one loaded, leaf first (see load_cert), as nginx does. */
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    SSL_CTX_set_info_callback(c, loom__tls_info_cb);
    if (o->ciphers && SSL_CTX_set_cipher_list(c, o->ciphers) != 1)
        return ctx_err(err, err_len, LOOM_ETLS, "bad cipher list \"%s\"", o->ciphers);
    if (o->ciphersuites && SSL_CTX_set_ciphersuites(c, o->ciphersuites) != 1)
        return ctx_err(err, err_len, LOOM_ETLS, "bad TLS 1.3 cipher suites \"%s\"",
                       o->ciphersuites);
    if (o->server) {
        SSL_CTX_set_alpn_select_cb(c, alpn_select, ctx);
        SSL_CTX_set_session_id_context(c, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                       sizeof TLS_SESSION_ID_CONTEXT - 1);
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(c, o->session_cache_size ? o->session_cache_size
                                                             : TLS_DEFAULT_SRV_CACHE);
        if (o->no_tickets) {
            SSL_CTX_set_options(c, SSL_OP_NO_TICKET);
            SSL_CTX_set_num_tickets(c, 0);
        } else {
            SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
            SSL_CTX_set_num_tickets(c, 1);
        }
        if (o->verify_client) {
            int mode = SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE;
            if (o->verify_client == LOOM_TLS_VERIFY_REQUIRED)
                mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
            SSL_CTX_set_verify(c, mode, NULL);
            if (o->ca_file) {
                STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
                if (names)
                    SSL_CTX_set_client_CA_list(c, names);
            }
        }
    }
    if (o->ca_file || o->ca_path) {
        if (SSL_CTX_load_verify_locations(c, o->ca_file, o->ca_path) != 1)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load trust anchors %s",
                           o->ca_file ? o->ca_file : o->ca_path);
    } else if (!o->server && !o->insecure) {
        if (SSL_CTX_set_default_verify_paths(c) != 1)
            return ctx_err(err, err_len, LOOM_ETLS, "cannot load the system's trust store");
    }
    return 0;
}

int loom_tls_ctx_new(const loom_tls_opts *o, loom_tls_ctx_t **out, char *err, size_t err_len)
{
    if (err && err_len)
        err[0] = '\0';
    if (o == NULL || out == NULL)
        return LOOM_EINVAL;
    *out = NULL;
    if (o->server && o->cert.cert_file == NULL && o->cert.cert_pem == NULL)
        return ctx_err(err, err_len, LOOM_EINVAL, "a server context needs a certificate");
    if (o->verify_client < LOOM_TLS_VERIFY_NONE || o->verify_client > LOOM_TLS_VERIFY_REQUIRED)
        return ctx_err(err, err_len, LOOM_EINVAL, "bad verify_client");
    loom_tls_ctx_t *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return LOOM_ENOMEM;
    atomic_init(&ctx->refs, 1);
    pthread_mutex_init(&ctx->lock, NULL);
    ctx->server = o->server;
    ctx->hs_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : TLS_DEFAULT_HS_MS;
    ctx->rotate_s = o->ticket_rotate_s ? o->ticket_rotate_s : TLS_DEFAULT_ROTATE_S;
    int rc = 0;
    if (o->alpn && o->alpn[0] && (rc = alpn_wire(o->alpn, &ctx->alpn, &ctx->alpn_len)) < 0) {
        if (rc == LOOM_EINVAL)
            ctx_err(err, err_len, rc, "bad ALPN list \"%s\"", o->alpn);
        goto fail;
    }
    ctx->ssl = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    if (ctx->ssl == NULL) {
        rc = ctx_err(err, err_len, LOOM_ETLS, "cannot make an OpenSSL context");
        goto fail;
    }
    if ((rc = ctx_setup(ctx, ctx->ssl, o, err, err_len)) < 0 ||
        (rc = load_cert(ctx->ssl, &o->cert, err, err_len)) < 0)
        goto fail;
    if (o->server) {
        if (o->sni_count) {
            ctx->sni = calloc(o->sni_count, sizeof *ctx->sni);
            if (ctx->sni == NULL) {
                rc = LOOM_ENOMEM;
                goto fail;
            }
            for (size_t i = 0; i < o->sni_count; i++) {
                SSL_CTX *c = SSL_CTX_new(TLS_server_method());
                if (c == NULL) {
                    rc = ctx_err(err, err_len, LOOM_ETLS, "cannot make an OpenSSL context");
                    goto fail;
                }
                ctx->sni[ctx->nsni++] = c;
                if ((rc = ctx_setup(ctx, c, o, err, err_len)) < 0)
                    goto fail;
                if (o->sni_certs[i].cert_file == NULL && o->sni_certs[i].cert_pem == NULL) {
                    rc = ctx_err(err, err_len, LOOM_EINVAL, "SNI certificate %zu is empty", i);
                    goto fail;
                }
                if ((rc = load_cert(c, &o->sni_certs[i], err, err_len)) < 0)
                    goto fail;
            }
            SSL_CTX_set_tlsext_servername_callback(ctx->ssl, sni_select);
            SSL_CTX_set_tlsext_servername_arg(ctx->ssl, ctx);
        }
    } else {
        SSL_CTX_set_verify(ctx->ssl, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
        if (ctx->alpn &&
            SSL_CTX_set_alpn_protos(ctx->ssl, ctx->alpn, (unsigned int)ctx->alpn_len) != 0) {
            rc = ctx_err(err, err_len, LOOM_ETLS, "cannot set ALPN");
            goto fail;
        }
        ctx->max_sess = o->session_cache_size ? o->session_cache_size : TLS_DEFAULT_CLI_CACHE;
        ctx->sess = calloc(ctx->max_sess, sizeof *ctx->sess);
        if (ctx->sess == NULL) {
            rc = LOOM_ENOMEM;
            goto fail;
        }
        SSL_CTX_set_session_cache_mode(ctx->ssl,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx->ssl, sess_new_cb);
    }
    *out = ctx;
    return 0;
fail:
    ERR_clear_error();
    loom_tls_ctx_free(ctx);
    return rc < 0 ? rc : LOOM_ETLS;
}

void loom_tls_ctx_ref(loom_tls_ctx_t *ctx)
{
    if (ctx)
        atomic_fetch_add(&ctx->refs, 1);
}

void loom_tls_ctx_free(loom_tls_ctx_t *ctx)
{
    if (ctx == NULL || atomic_fetch_sub(&ctx->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ctx->nsni; i++)
        SSL_CTX_free(ctx->sni[i]);
    free(ctx->sni);
    for (size_t i = 0; ctx->sess && i < ctx->max_sess; i++)
        if (ctx->sess[i].sess)
            SSL_SESSION_free(ctx->sess[i].sess);
    free(ctx->sess);
    SSL_CTX_free(ctx->ssl);
    free(ctx->alpn);
    OPENSSL_cleanse(ctx->keys, sizeof ctx->keys);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

bool loom_tls_ctx_is_server(const loom_tls_ctx_t *ctx)
{
    return ctx && ctx->server;
}

SSL_CTX *loom__tls_ctx_ssl(loom_tls_ctx_t *ctx)
{
    return ctx->ssl;
}

uint32_t loom__tls_ctx_hs_ms(const loom_tls_ctx_t *ctx)
{
    return ctx->hs_ms;
}
