/* http/common.c - what the HTTP server and client share: the per-loop HTTP
 * slot, header lookup and token lists, the field rules (one rule for names
 * and one for values, the stricter, for both directions) and the chunk-size
 * line. Protocol-neutral or HTTP/1 framing helpers only; no state machine. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"

/* --- The loop's HTTP slot ---------------------------------------------------------- */

static void loom__http_loop_free(loom_loop_t *loop)
{
    loom__http_loop *L = loop->http;
    if (L == NULL)
        return;
    if (L->client_free)
        L->client_free(loop);
    if (L->server_free)
        L->server_free(loop);
    free(L);
    loop->http = NULL;
    loop->http_free = NULL;
}

loom__http_loop *loom__http_get(loom_loop_t *loop)
{
    if (LOOM__LIKELY(loop->http != NULL))
        return loop->http;
    loom__http_loop *L = calloc(1, sizeof *L);
    if (L == NULL)
        return NULL;
    loop->http = L;
    loop->http_free = loom__http_loop_free;
    return L;
}

/* --- Headers ------------------------------------------------------------------------ */

const loom_http_header_t *loom_http_header_find(const loom_http_header_t *headers, size_t n,
                                                const char *name, size_t *pos)
{
    size_t nl = strlen(name);
    for (size_t i = pos ? *pos : 0; i < n; i++) {
        if (headers[i].name_len == nl && strncasecmp(headers[i].name, name, nl) == 0) {
            if (pos)
                *pos = i + 1;
            return &headers[i];
        }
    }
    if (pos)
        *pos = n;
    return NULL;
}

int loom_http_token_list_has(const char *value, size_t len, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tl && tl && strncasecmp(value + start, token, tl) == 0)
            return 1;
    }
    return 0;
}

/* Field checks: one table lookup per byte, and the terminating NUL stops
 * the same loop (it is marked bad too), so no strlen() pass is needed.
 * Names: token characters only. Values: no control character but HTAB (CR
 * and LF above all: no header injection), no DEL. */
const unsigned char loom__http_name_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};
const unsigned char loom__http_value_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

bool loom__http_token_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (loom__http_name_stop[(unsigned char)s[i]])
            return false;
    return true;
}

bool loom__http_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (loom__http_value_stop[(unsigned char)s[i]])
            return false;
    return true;
}

/* --- Chunked framing --------------------------------------------------------------- */

size_t loom__http_chunk_line(char *out, uint64_t n)
{
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = "0123456789abcdef"[n & 15];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}
