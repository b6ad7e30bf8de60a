/* core/event.c - the event hierarchy, event routing and application errors.
 *
 * Routing, in order: the operation's own event callback, the loop's default
 * event callback, then - for errors only - ending loom_run() with the code
 * after calling on_fatal. Info events with no handler are logged at debug
 * level. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static const loom_event_kind_t loom__parent[LOOM_EV__COUNT] = {[LOOM_EV_NONE] = LOOM_EV_NONE,
#define LOOM__EV_PARENT(name, parent, str) [LOOM_EV_##name] = LOOM_EV_##parent,
                                                               LOOM_EVENT_KIND_MAP(LOOM__EV_PARENT)
#undef LOOM__EV_PARENT
};

static const char *const loom__kind_names[LOOM_EV__COUNT] = {[LOOM_EV_NONE] = "none",
#define LOOM__EV_NAME(name, parent, str) [LOOM_EV_##name] = str,
                                                             LOOM_EVENT_KIND_MAP(LOOM__EV_NAME)
#undef LOOM__EV_NAME
};

loom_event_kind_t loom_event_kind_parent(loom_event_kind_t kind)
{
    if ((unsigned)kind >= LOOM_EV__COUNT)
        return LOOM_EV_NONE;
    return loom__parent[kind];
}

const char *loom_event_kind_name(loom_event_kind_t kind)
{
    if ((unsigned)kind >= LOOM_EV__COUNT)
        return "unknown";
    return loom__kind_names[kind];
}

int loom_event_kind_is(loom_event_kind_t kind, loom_event_kind_t ancestor)
{
    if ((unsigned)kind >= LOOM_EV__COUNT || ancestor == LOOM_EV_NONE)
        return 0;
    /* The hierarchy is at most five deep: a walk up the parents is cheap. */
    for (loom_event_kind_t k = kind; k != LOOM_EV_NONE; k = loom__parent[k])
        if (k == ancestor)
            return 1;
    return 0;
}

int loom_event_is(const loom_event_t *ev, loom_event_kind_t kind)
{
    return ev != NULL && loom_event_kind_is(ev->kind, kind);
}

int loom_event_is_error(const loom_event_t *ev)
{
    return loom_event_is(ev, LOOM_EV_ERROR);
}

static void loom__event_fatal(loom_loop_t *loop, const loom_event_t *ev);

/* Delivery through the default chain (no operation callback). */
static void loom__event_default(loom_loop_t *loop, const loom_event_t *ev)
{
    if (loop->on_event) {
        loom__op_scope s;
        loom__op_enter(loop, &s, NULL, NULL, ev->object);
        s.kind = 2;
        loop->on_event(ev, loop->event_data);
        loom__op_leave(loop, &s);
        return;
    }
    if (!loom_event_kind_is(ev->kind, LOOM_EV_ERROR)) {
        loom_log(loop, LOOM_LOG_DEBUG, "unhandled %s: %s", loom_event_kind_name(ev->kind), ev->msg);
        return;
    }
    loom__event_fatal(loop, ev);
}

/* An error nobody handles ends the loop, as cl-async's default handler
 * re-signals it. The first one wins. */
static void loom__event_fatal(loom_loop_t *loop, const loom_event_t *ev)
{
    loom_log(loop, LOOM_LOG_ERR, "unhandled %s: %s", loom_event_kind_name(ev->kind), ev->msg);
    if (loop->run_result == 0) {
        loop->run_result = ev->code < 0 ? ev->code : LOOM_EAPP;
        if (loop->on_fatal)
            loop->on_fatal(ev, loop->event_data);
    }
    loop->stop_flag = 1;
}

void loom__event_emit(loom_loop_t *loop, loom_event_cb cb, void *cb_data, loom_event_kind_t kind,
                      int code, const char *msg, void *object)
{
    loom_event_t ev = {
        .kind = kind,
        .code = code,
        .msg = msg ? msg : (code ? loom_strerror(code) : loom_event_kind_name(kind)),
        .object = object,
        .loop = loop,
    };
    if (cb) {
        loom__op_scope s;
        loom__op_enter(loop, &s, cb, cb_data, object);
        s.kind = 1;
        cb(&ev, cb_data);
        loom__op_leave(loop, &s);
        return;
    }
    loom__event_default(loop, &ev);
}

/* An application error waiting for its callback to return. */
typedef struct loom__raised {
    loom__queue node;
    loom_event_cb cb;
    void *cb_data;
    void *object;
    int code;
    int route; /* 0: default chain; 1: through cb; 2: straight to the fatal end */
    char msg[];
} loom__raised;

int loom_raise(loom_loop_t *loop, int code, const char *msg, void *object)
{
    if (code >= 0)
        return LOOM_EINVAL;
    if (msg == NULL)
        msg = loom_strerror(code);
    size_t n = strlen(msg);
    loom__raised *r = malloc(sizeof *r + n + 1);
    if (r == NULL)
        return LOOM_ENOMEM;
    memcpy(r->msg, msg, n + 1);
    r->code = code;
    r->object = object;
    r->cb = NULL;
    r->cb_data = NULL;
    r->route = 0;
    if (loop->op) {
        /* Delivered when the innermost running callback returns: to its
         * operation's event callback if it is an ordinary callback with one;
         * to the default chain if raised inside an event callback; and
         * straight to the fatal end if raised inside the default handler,
         * so that no error can bounce between handlers for ever. */
        if (loop->op->kind == 0 && loop->op->on_event) {
            r->cb = loop->op->on_event;
            r->cb_data = loop->op->data;
            r->route = 1;
        } else if (loop->op->kind == 2) {
            r->route = 2;
        }
        if (object == NULL)
            r->object = loop->op->object;
    }
    loom__queue_insert_tail(&loop->raised, &r->node);
    if (loop->op == NULL)
        loom__kick(loop); /* a foreign loop must come back to deliver it */
    return 0;
}

void loom__op_enter(loom_loop_t *loop, loom__op_scope *s, loom_event_cb on_event, void *data,
                    void *object)
{
    s->on_event = on_event;
    s->data = data;
    s->object = object;
    s->kind = 0;
    s->prev = loop->op;
    loop->op = s;
}

/* Delivers the raised errors queued while scope `s` was innermost. */
void loom__op_leave(loom_loop_t *loop, loom__op_scope *s)
{
    loop->op = s->prev;
    if (LOOM__LIKELY(loom__queue_empty(&loop->raised)))
        return;
    loom__queue q;
    loom__queue_init(&q);
    loom__queue_splice_tail(&q, &loop->raised);
    while (!loom__queue_empty(&q)) {
        loom__raised *r = LOOM__CONTAINER_OF(q.next, loom__raised, node);
        loom__queue_remove(&r->node);
        loom_event_t ev = {.kind = LOOM_EV_APP_ERROR,
                           .code = r->code,
                           .msg = r->msg,
                           .object = r->object,
                           .loop = loop};
        if (r->route == 1) {
            loom__op_scope inner;
            loom__op_enter(loop, &inner, r->cb, r->cb_data, r->object);
            inner.kind = 1;
            r->cb(&ev, r->cb_data);
            loom__op_leave(loop, &inner);
        } else if (r->route == 2) {
            loom__event_fatal(loop, &ev);
        } else {
            loom__event_default(loop, &ev);
        }
        free(r);
    }
}

/* Called by the loop each iteration for errors raised outside callbacks. */
void loom__raised_flush(loom_loop_t *loop);
void loom__raised_flush(loom_loop_t *loop)
{
    if (loom__queue_empty(&loop->raised) || loop->op)
        return;
    loom__op_scope s;
    loom__op_enter(loop, &s, NULL, NULL, NULL);
    loom__op_leave(loop, &s);
}

/* Frees raised errors never delivered (loop free). */
void loom__raised_free(loom_loop_t *loop);
void loom__raised_free(loom_loop_t *loop)
{
    while (!loom__queue_empty(&loop->raised)) {
        loom__raised *r = LOOM__CONTAINER_OF(loop->raised.next, loom__raised, node);
        loom__queue_remove(&r->node);
        free(r);
    }
}
