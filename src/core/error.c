/* core/error.c - loom_strerror and loom_err_name, generated from the one
 * table in loom/error.h. */
#include "core/internal.h"

const char *loom_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define LOOM__ERR_MSG(name, val, msg)                                                              \
    case (val):                                                                                    \
        return msg;
        LOOM_ERRNO_MAP(LOOM__ERR_MSG)
#undef LOOM__ERR_MSG
    default:
        return "unknown error";
    }
}

const char *loom_err_name(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define LOOM__ERR_NAME(name, val, msg)                                                             \
    case (val):                                                                                    \
        return #name;
        LOOM_ERRNO_MAP(LOOM__ERR_NAME)
#undef LOOM__ERR_NAME
    default:
        return "UNKNOWN";
    }
}

int loom_err_from_errno(int errnum)
{
    if (errnum == EWOULDBLOCK)
        return LOOM_EAGAIN;
    switch (-errnum) {
#define LOOM__ERR_KNOWN(name, val, msg)                                                            \
    case (val):                                                                                    \
        return (val);
        LOOM_ERRNO_MAP(LOOM__ERR_KNOWN)
#undef LOOM__ERR_KNOWN
    default:
        return LOOM_EIO;
    }
}
