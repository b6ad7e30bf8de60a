/* loom/error.h - error codes.
 *
 * Every loom function that can fail returns 0 (or a non-negative count) on
 * success and a negative LOOM_E* code on failure. The codes that mirror a
 * system errno have the value -errno, so a code from a system call can be
 * passed through unchanged. loom's own codes live below -4000.
 *
 * One X-macro table, LOOM_ERRNO_MAP, yields the enum, loom_strerror() and
 * loom_err_name(), so the three can never disagree.
 */
#ifndef LOOM_ERROR_H
#define LOOM_ERROR_H

#include <errno.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, message) */
#define LOOM_ERRNO_MAP(XX)                                                                         \
    XX(EPERM, -EPERM, "operation not permitted")                                                   \
    XX(ENOENT, -ENOENT, "no such file or directory")                                               \
    XX(EINTR, -EINTR, "interrupted system call")                                                   \
    XX(EIO, -EIO, "i/o error")                                                                     \
    XX(EBADF, -EBADF, "bad file descriptor")                                                       \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                        \
    XX(ENOMEM, -ENOMEM, "not enough memory")                                                       \
    XX(EACCES, -EACCES, "permission denied")                                                       \
    XX(EFAULT, -EFAULT, "bad address in system call argument")                                     \
    XX(EBUSY, -EBUSY, "resource busy or locked")                                                   \
    XX(EEXIST, -EEXIST, "already exists")                                                          \
    XX(ENOTDIR, -ENOTDIR, "not a directory")                                                       \
    XX(EISDIR, -EISDIR, "is a directory")                                                          \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(ENFILE, -ENFILE, "file table overflow")                                                     \
    XX(EMFILE, -EMFILE, "too many open files")                                                     \
    XX(ENOSPC, -ENOSPC, "no space left on device")                                                 \
    XX(EPIPE, -EPIPE, "broken pipe")                                                               \
    XX(ERANGE, -ERANGE, "result out of range")                                                     \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                               \
    XX(ENOSYS, -ENOSYS, "function not implemented")                                                \
    XX(ENOTEMPTY, -ENOTEMPTY, "directory not empty")                                               \
    XX(ENOTSOCK, -ENOTSOCK, "socket operation on non-socket")                                      \
    XX(EMSGSIZE, -EMSGSIZE, "message too long")                                                    \
    XX(EPROTO, -EPROTO, "protocol error")                                                          \
    XX(EPROTONOSUPPORT, -EPROTONOSUPPORT, "protocol not supported")                                \
    XX(ENOTSUP, -ENOTSUP, "operation not supported")                                               \
    XX(EAFNOSUPPORT, -EAFNOSUPPORT, "address family not supported")                                \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                                          \
    XX(EADDRNOTAVAIL, -EADDRNOTAVAIL, "address not available")                                     \
    XX(ENETDOWN, -ENETDOWN, "network is down")                                                     \
    XX(ENETUNREACH, -ENETUNREACH, "network is unreachable")                                        \
    XX(ECONNABORTED, -ECONNABORTED, "software caused connection abort")                            \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                                        \
    XX(ENOBUFS, -ENOBUFS, "no buffer space available")                                             \
    XX(EISCONN, -EISCONN, "socket is already connected")                                           \
    XX(ENOTCONN, -ENOTCONN, "socket is not connected")                                             \
    XX(ETIMEDOUT, -ETIMEDOUT, "connection timed out")                                              \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                          \
    XX(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                                         \
    XX(EALREADY, -EALREADY, "operation already in progress")                                       \
    XX(EINPROGRESS, -EINPROGRESS, "operation in progress")                                         \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                                \
    XX(EOF, -4095, "end of file")                                                                  \
    XX(ECLOSED, -4094, "object is closed")                                                         \
    XX(EBACKEND, -4093, "backend unavailable")                                                     \
    XX(ENOPLUGIN, -4092, "backend plugin not found or invalid")                                    \
    XX(EDNS, -4091, "name resolution failed")                                                      \
    XX(ENOTFOUND, -4090, "host not found")                                                         \
    XX(EHTTP, -4089, "malformed http message")                                                     \
    XX(ETOOBIG, -4088, "message exceeds a size limit")                                             \
    XX(EAPP, -4087, "application error")                                                           \
    XX(ESTATE, -4086, "operation not valid in the current state")                                  \
    XX(EURL, -4085, "invalid url")                                                                 \
    XX(EPROTOCOL, -4084, "unsupported scheme or protocol")                                         \
    XX(ETOOMANY, -4083, "too many objects")                                                        \
    XX(ETLS, -4082, "tls error")                                                                   \
    XX(ECERT, -4081, "certificate verification failed")                                            \
    XX(ETRUNCATED, -4080, "connection closed without close_notify (truncated)")                    \
    XX(ENOBODY, -4079, "the answer has no body (HEAD, 204, 304)")

/* The codes: LOOM_EPERM, LOOM_ENOENT, ..., LOOM_ECLOSED, ... */
typedef enum {
#define LOOM__ERR_ENUM(name, val, msg) LOOM_##name = (val),
    LOOM_ERRNO_MAP(LOOM__ERR_ENUM)
#undef LOOM__ERR_ENUM
        LOOM__ERR_MAX_UNUSED = 0
} loom_errno_t;

/* Returns a static, human-readable message for `code`: "success" for 0,
 * "unknown error" for an unknown code. Thread-safe. */
LOOM_EXTERN const char *loom_strerror(int code);

/* Returns the static symbolic name of `code` without the prefix ("ECLOSED"),
 * "OK" for 0, or "UNKNOWN". Thread-safe. */
LOOM_EXTERN const char *loom_err_name(int code);

/* Translates a positive errno value into a loom code (-errno for the values in
 * the table, LOOM_EIO otherwise). Thread-safe. */
LOOM_EXTERN int loom_err_from_errno(int errnum);

#ifdef __cplusplus
}
#endif
#endif
