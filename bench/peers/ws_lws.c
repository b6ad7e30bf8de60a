/* bench/peers/ws_lws.c - the libwebsockets peer (Debian libwebsockets-dev):
 * a minimal server in the library's idiom, speaking the bench protocol of
 * bench/ws/README.md (echo, `subscribe`, `broadcast <payload>`), UTF-8
 * validated, permessage-deflate through lws's own extension. Messages are
 * put together from lws's fragments and echoed from SERVER_WRITEABLE; a
 * broadcast is stored once and each subscriber is asked to write it.
 *
 * Usage: bench-ws-lws --port P
 */
#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pss {
    struct pss *next; /* in the subscriber list */
    struct lws *wsi;
    unsigned char *rx; /* LWS_PRE + the message being received */
    size_t rxlen, rxcap;
    int rxbin;
    unsigned char *tx; /* LWS_PRE + the answer waiting for writability */
    size_t txlen;
    int txbin, txpending, subscribed;
    unsigned seen; /* the last broadcast sent to it */
} pss_t;

static pss_t *subs;
static unsigned char bc[LWS_PRE + 1024];
static size_t bclen;
static unsigned bcseq;

static int append(unsigned char **buf, size_t *len, size_t *cap, const void *in, size_t n)
{
    if (LWS_PRE + *len + n > *cap) {
        size_t c = (LWS_PRE + *len + n) * 2;
        unsigned char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + LWS_PRE + *len, in, n);
    *len += n;
    return 0;
}

static int queue_answer(pss_t *p, const unsigned char *data, size_t len, int bin)
{
    size_t cap = 0;
    p->txlen = 0;
    free(p->tx);
    p->tx = NULL;
    if (append(&p->tx, &p->txlen, &cap, data, len) != 0)
        return -1;
    p->txbin = bin;
    p->txpending = 1;
    lws_callback_on_writable(p->wsi);
    return 0;
}

static int on_message(pss_t *p)
{
    unsigned char *m = p->rx + LWS_PRE;
    size_t len = p->rxlen;
    p->rxlen = 0;
    if (!p->rxbin && len == 9 && memcmp(m, "subscribe", 9) == 0) {
        if (!p->subscribed) {
            p->subscribed = 1;
            p->seen = bcseq;
            p->next = subs;
            subs = p;
        }
        return queue_answer(p, (const unsigned char *)"subscribed", 10, 0);
    }
    if (!p->rxbin && len >= 10 && memcmp(m, "broadcast ", 10) == 0) {
        if (len - 10 > sizeof bc - LWS_PRE)
            return -1;
        memcpy(bc + LWS_PRE, m + 10, len - 10);
        bclen = len - 10;
        bcseq++;
        for (pss_t *s = subs; s; s = s->next)
            lws_callback_on_writable(s->wsi);
        return 0;
    }
    /* Echo: the buffers swap, no copy. */
    unsigned char *t = p->tx;
    p->tx = p->rx;
    p->txlen = len;
    p->rx = t;
    p->rxcap = t ? p->rxcap : 0;
    p->txbin = p->rxbin;
    p->txpending = 1;
    lws_callback_on_writable(p->wsi);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    pss_t *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(p, 0, sizeof *p);
        p->wsi = wsi;
        break;
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            p->rxlen = 0;
            p->rxbin = lws_frame_is_binary(wsi);
        }
        if (append(&p->rx, &p->rxlen, &p->rxcap, in, len) != 0)
            return -1;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi))
            return on_message(p);
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (p->txpending) {
            p->txpending = 0;
            if (lws_write(wsi, p->tx + LWS_PRE, p->txlen,
                          p->txbin ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) < (int)p->txlen)
                return -1;
            if (p->subscribed && p->seen != bcseq)
                lws_callback_on_writable(wsi);
        } else if (p->subscribed && p->seen != bcseq) {
            p->seen = bcseq;
            if (lws_write(wsi, bc + LWS_PRE, bclen, LWS_WRITE_TEXT) < (int)bclen)
                return -1;
        }
        break;
    case LWS_CALLBACK_CLOSED:
        if (p->subscribed) {
            for (pss_t **pp = &subs; *pp; pp = &(*pp)->next)
                if (*pp == p) {
                    *pp = p->next;
                    break;
                }
        }
        free(p->rx);
        free(p->tx);
        p->rx = p->tx = NULL;
        break;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"bench", callback, sizeof(pss_t), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_extension extensions[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_max_window_bits"},
    {NULL, NULL, NULL},
};

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int port = 0;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
    if (port <= 0) {
        fprintf(stderr, "usage: bench-ws-lws --port P\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.extensions = extensions;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "bench-ws-lws: lws_create_context failed\n");
        return 1;
    }
    int n = 0;
    while (n >= 0 && !stop)
        n = lws_service(ctx, 0);
    lws_context_destroy(ctx);
    return 0;
}
