/* loom.h - the umbrella header: include this and you have all of loom.
 *
 * loom is an asynchronous I/O library for C: an event loop with timers,
 * signals, fd watchers, cross-thread posts and a worker pool; async DNS; TCP
 * and Unix-domain sockets; an HTTP/1.1 server and client; and stats. Errors
 * are negative LOOM_E* codes, and asynchronous outcomes arrive as typed
 * events (loom/event.h).
 */
#ifndef LOOM_H
#define LOOM_H

#include "loom/common.h"
#include "loom/error.h"
#include "loom/event.h"
#include "loom/loop.h"
#include "loom/timer.h"
#include "loom/io.h"
#include "loom/signal.h"
#include "loom/stats.h"
#include "loom/backend.h"
#include "loom/dns.h"
#include "loom/tcp.h"
#include "loom/tls.h"
#include "loom/url.h"
#include "loom/http_parser.h"
#include "loom/http.h"
#include "loom/http_client.h"
#include "loom/ws_frame.h"
#include "loom/ws.h"
#include "loom/udp.h"
#include "loom/process.h"
#include "loom/fs_watch.h"

#define LOOM_VERSION_MAJOR 0
#define LOOM_VERSION_MINOR 1
#define LOOM_VERSION_PATCH 0

#endif
