/* test_tcp_slabs: one loop holds sockets of many object sizes at once (a
 * class's extension and transport bytes decide the size: plain, HTTP, and
 * later TLS, WebSocket and HTTP/2 variants), more than the four sizes the
 * socket slabs once allowed; each size's sockets are freed clean. */
/* LOOM_TEST_NO_TRANSPORT: it sets the classes' transports itself. */
#include "net/net_internal.h"
#include "test_tcp_util.h"

#define NSIZES 12

int main(void)
{
    test_timeout(10);
    loom_loop_t *loop = test_loop_new();
    static loom__sock_class cls[NSIZES];
    loom_socket_t *s[NSIZES][3];
    for (int i = 0; i < NSIZES; i++) {
        cls[i] = (loom__sock_class){.extra = (uint32_t)(16 * i), .is_static = true};
        /* Half of them with a transport: its state adds to the size. */
        loom__class_set_transport(&cls[i], i % 2 ? &loom__transport_split : NULL);
        for (int k = 0; k < 3; k++) {
            s[i][k] = loom__socket_new(loop, &cls[i], -1);
            CHECK(s[i][k] != NULL);
            /* The extension and transport areas are the socket's own. */
            memset(loom__socket_ext(s[i][k]), 0xab, cls[i].extra);
            if (cls[i].tr_extra)
                memset(loom__socket_tr(s[i][k]), 0, cls[i].tr_extra);
        }
    }
    for (int i = 0; i < NSIZES; i++) {
        for (int k = 0; k < 3; k++) {
            CHECK(s[i][k]->cls == &cls[i]);
            unsigned char *e = loom__socket_ext(s[i][k]);
            for (uint32_t j = 0; j < cls[i].extra; j++)
                CHECK_EQ(e[j], 0xab);
            loom__socket_discard(s[i][k]);
        }
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
