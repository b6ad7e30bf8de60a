/* loom/common.h - shared declarations: export macro and the opaque types. */
#ifndef LOOM_COMMON_H
#define LOOM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(LOOM_BUILDING) && defined(__GNUC__)
#define LOOM_EXTERN __attribute__((visibility("default")))
#else
#define LOOM_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Every object is opaque and owned by loom; each has a void * user slot. */
typedef struct loom_loop loom_loop_t;
typedef struct loom_timer loom_timer_t;
typedef struct loom_idle loom_idle_t;
typedef struct loom_io loom_io_t;
typedef struct loom_signal loom_signal_t;
typedef struct loom_work loom_work_t;
typedef struct loom_event loom_event_t;

#ifdef __cplusplus
}
#endif
#endif
