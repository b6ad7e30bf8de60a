#!/usr/bin/env python3
"""fuzz/seeds_h2.py - writes the seed corpus of fuzz_h2_server
(fuzz/corpus/h2_server/). Standard library only: frames and HPACK (indexed
fields and literals without indexing) are built by hand.

An input is: a configuration byte, the client's byte stream, then action
bytes read from the END backwards (see fuzz/fuzz_h2_server.c). A seed is
cfg + stream + reversed(actions), where the send actions cut exactly the
stream, and an action meant for on_request follows the sends that complete
the request.

cfg: 1 poll, 2 streamed bodies (on_body), 4 small limits and settings, 8
keep-alive cap (2), 16 raw (no preface from the harness), 32 the client goes
before the deferred answers, 64 server close at the end, 128 forced (and the
client's last close is a reset).
Actions: op = a & 7, arg = a >> 3. 0-2 send (arg < 16: arg + 1 bytes, else
(arg - 15) * 64), 3 run and read, 4 act on the oldest deferred request, 5 on
another (arg & 3), 6 half-close, 7 close and reconnect (arg & 1: reset).
on_request: 0 answer (arg & 7: status, arg >> 3: length), 1 stream now, 2
release, 3 start a stream and defer, 4 event stream and defer, 5 defer and
pause the body, 6 interim answer and defer, 7 defer.
Acting on a deferred request: a running stream: arg & 1 writes more, else
ends; else arg & 3: 0 resume, 1 pause, 2-3 answer (or release).
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "h2_server")

MAGIC = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINUP, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 1, 1, 4, 8, 32

RAW, LATE, SRVCLOSE, HARD = 16, 32, 64, 128
POLL, STREAM, SMALL, KEEPALIVE = 1, 2, 4, 8


def frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid) + payload


def hint(v, prefix, first=0):
    """HPACK integer with a prefix of `prefix` bits."""
    m = (1 << prefix) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]
    v -= m
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)
    return bytes(out)


def lit(name, value):
    """A literal field without indexing, new name."""
    name, value = name.encode(), value.encode()
    return b"\x00" + hint(len(name), 7) + name + hint(len(value), 7) + value


def block(method="GET", path="/", extra=(), authority="localhost"):
    b = b""
    if method == "GET":
        b += b"\x82"  # :method GET (static 2)
    elif method == "POST":
        b += b"\x83"
    else:
        b += lit(":method", method)
    b += b"\x86"  # :scheme http
    b += b"\x84" if path == "/" else lit(":path", path)
    if authority is not None:
        b += lit(":authority", authority)
    for n, v in extra:
        b += lit(n, v)
    return b


def headers(sid, blk, end_stream=True, flags=END_HEADERS):
    return frame(HEADERS, flags | (END_STREAM if end_stream else 0), sid, blk)


def settings(*kv, ack=False):
    return frame(SETTINGS, ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in kv))


def send(n):
    """Action bytes that send exactly n bytes."""
    out = []
    while n > 0:
        if n >= 64:
            k = min(n // 64, 16)
            out.append(((15 + k) << 3) | 0)
            n -= k * 64
        else:
            k = min(n, 16)
            out.append(((k - 1) << 3) | 0)
            n -= k
    return out


def RUN(n=1):
    return [3] * n


def REQ(op, arg=0):
    """The action byte on_request takes."""
    return [(arg << 3) | op]


def ACT(arg, op=4):
    return [(arg << 3) | op]


def seed(cfg, parts):
    stream, actions = b"", []
    for p in parts:
        if isinstance(p, bytes):
            stream += p
            actions += send(len(p))
        else:
            actions += p
    return bytes([cfg]) + stream + bytes(reversed(actions))


SEEDS = {}


def add(name, cfg, parts):
    SEEDS[name] = seed(cfg, parts)


SACK = settings(ack=True)
GET1 = headers(1, block())

add("get", 0, [SACK, GET1, REQ(0, 0), RUN(2)])
add("get_poll", POLL, [SACK, GET1, REQ(0, 9), RUN(2)])
add("head", 0, [SACK, headers(1, block("HEAD")), REQ(0, 8), RUN(2)])
add("get_stream_now", 0, [SACK, GET1, REQ(1, 1), RUN(2)])
add("get_release", 0, [SACK, GET1, REQ(2), RUN(2)])
add("get_query", 0, [SACK, headers(1, block("GET", "/a%20b?a=1&b=2", [("user-agent", "fuzz"), ("accept", "*/*")])), REQ(0, 1), RUN(2)])

# POST, body in several DATA frames; buffered and streamed.
post = [SACK, headers(1, block("POST", "/up", [("content-length", "11")]), end_stream=False),
        frame(DATA, 0, 1, b"hello"), frame(DATA, 0, 1, b" "), frame(DATA, END_STREAM, 1, b"world")]
add("post", 0, post[:4] + [post[4], REQ(0, 0), RUN(2)])
add("post_stream", STREAM, post[:2] + [REQ(7)] + post[2:] + [RUN(), ACT(2), RUN(2)])
add("post_pause", STREAM, post[:2] + [REQ(5)] + post[2:] + [RUN(), ACT(0), RUN(), ACT(2), RUN(2)])
add("post_small_413", SMALL, [SACK, headers(1, block("POST", "/up"), end_stream=False),
                              frame(DATA, 0, 1, b"x" * 100), frame(DATA, END_STREAM, 1, b"y"), RUN(2)])
add("post_nolength", STREAM | SMALL, [SACK, headers(1, block("POST", "/up"), end_stream=False), REQ(5),
                                      frame(DATA, 0, 1, b"x" * 150), RUN(), ACT(0), RUN(),
                                      frame(DATA, END_STREAM, 1, b"y"), RUN(), ACT(2), RUN(2)])

# CONTINUATION.
blk = block("GET", "/cont", [("x-a", "1" * 20), ("x-b", "2" * 20)])
add("continuation", 0, [SACK, frame(HEADERS, END_STREAM, 1, blk[:10]), frame(CONT, 0, 1, blk[10:30]),
                        frame(CONT, END_HEADERS, 1, blk[30:]), REQ(0, 2), RUN(2)])

# PRIORITY, and HEADERS with a priority.
add("priority", 0, [SACK, frame(PRIORITY, 0, 3, struct.pack(">IB", 1, 16)),
                    frame(HEADERS, END_STREAM | END_HEADERS | PRIO, 1, struct.pack(">IB", 0, 200) + block()),
                    REQ(0, 0), frame(PRIORITY, 0, 1, struct.pack(">IB", 0x80000003, 5)), RUN(2)])
add("priority_self", 0, [SACK, frame(PRIORITY, 0, 5, struct.pack(">IB", 5, 16)), RUN(2)])
add("priority_zero", 0, [SACK, frame(PRIORITY, 0, 0, struct.pack(">IB", 1, 16)), RUN(2)])

# RST_STREAM of a deferred request, then another request.
add("rst_deferred", 0, [SACK, GET1, REQ(7), RUN(), frame(RST, 0, 1, struct.pack(">I", 8)), RUN(),
                        headers(3, block()), REQ(0, 0), RUN(2)])
add("rst_streaming", 0, [SACK, GET1, REQ(3, 0), RUN(), ACT(1), frame(RST, 0, 1, struct.pack(">I", 8)), RUN(2)])
add("rapid_reset", SMALL, [SACK] + sum([[headers(i, block()), REQ(7), frame(RST, 0, i, struct.pack(">I", 8))]
                                        for i in range(1, 16, 2)], []) + [RUN(2)])

# WINDOW_UPDATE: a window of 0, a streamed answer, then the windows open.
add("window", 0, [settings((4, 0)), SACK, GET1, REQ(3, 0), RUN(), ACT(1), ACT(3), RUN(),
                  frame(WINUP, 0, 1, struct.pack(">I", 3000)), RUN(),
                  frame(WINUP, 0, 0, struct.pack(">I", 100000)), RUN(), ACT(0), RUN(2)])
add("window_overflow", 0, [SACK, GET1, REQ(7), frame(WINUP, 0, 1, struct.pack(">I", 0x7FFFFFFF)), RUN(2)])
add("window_zero_inc", 0, [SACK, frame(WINUP, 0, 0, struct.pack(">I", 0)), RUN(2)])

# PING, with and without ACK.
add("ping", 0, [frame(PING, 0, 0, b"12345678"), frame(PING, ACK, 0, b"abcdefgh"), RUN(2)])
add("ping_bad", 0, [frame(PING, 0, 0, b"1234"), RUN(2)])

# SETTINGS, with and without ACK, some values.
add("settings", 0, [settings((1, 0), (2, 0), (3, 10), (4, 1000), (5, 20000), (6, 100), (8, 1), (9, 1)),
                    SACK, GET1, REQ(0, 9), RUN(2)])
add("settings_bad", 0, [settings((5, 100)), RUN(2)])
add("settings_ack_payload", 0, [frame(SETTINGS, ACK, 0, b"\0\0\0\0\0\0"), RUN(2)])

# GOAWAY from the client, with a request in flight.
add("goaway", 0, [SACK, GET1, REQ(7), frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)), RUN(), ACT(2), RUN(2)])

# Padding.
pad_blk = block("POST", "/pad", [("content-length", "3")])
add("padding", 0, [SACK, frame(HEADERS, END_HEADERS | PADDED, 1, bytes([4]) + pad_blk + b"\0" * 4), REQ(0, 1),
                   frame(DATA, END_STREAM | PADDED, 1, bytes([2]) + b"abc" + b"\0\0"), RUN(2)])
add("padding_stream", STREAM, [SACK, frame(HEADERS, END_HEADERS | PADDED, 1, bytes([4]) + pad_blk + b"\0" * 4),
                               REQ(7), frame(DATA, END_STREAM | PADDED, 1, bytes([2]) + b"abc" + b"\0\0"),
                               RUN(), ACT(2), RUN(2)])

# Trailers.
add("trailers", 0, [SACK, headers(1, block("POST", "/t"), end_stream=False), frame(DATA, 0, 1, b"body"),
                    headers(1, lit("x-checksum", "abc")), REQ(0, 0), RUN(2)])
add("trailers_stream", STREAM, [SACK, headers(1, block("POST", "/t"), end_stream=False), REQ(7),
                                frame(DATA, 0, 1, b"body"), headers(1, lit("x-checksum", "abc")), RUN(),
                                ACT(2), RUN(2)])

# Many streams at once, answered in several ways.
many = [SACK]
for i, op in enumerate([0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 7, 3]):
    many += [headers(2 * i + 1, block("GET", "/s%d" % i)), REQ(op, i)]
many += [RUN(), ACT(1), ACT(3), ACT(2), ACT(8, 5), ACT(6, 5), RUN(), ACT(2), ACT(2), ACT(0), ACT(0), RUN(2)]
add("many_streams", 0, many)
add("many_streams_small", SMALL, many)
add("many_streams_keepalive", KEEPALIVE, many)

# Expect: 100-continue.
exp = block("POST", "/e", [("content-length", "4"), ("expect", "100-continue")])
add("expect", 0, [SACK, headers(1, exp, end_stream=False), RUN(), frame(DATA, END_STREAM, 1, b"data"),
                  REQ(0, 0), RUN(2)])
add("expect_stream", STREAM, [SACK, headers(1, exp, end_stream=False), REQ(7), RUN(),
                              frame(DATA, END_STREAM, 1, b"data"), RUN(), ACT(2), RUN(2)])
add("expect_bad", 0, [SACK, headers(1, block("GET", "/", [("expect", "nope")])), RUN(2)])

# Event stream, and streamed answers with writes later.
add("sse", 0, [SACK, GET1, REQ(4, 3), RUN(), ACT(1), ACT(3), RUN(), ACT(0), RUN(2)])
add("stream_cl", 0, [SACK, GET1, REQ(3, 2), RUN(), ACT(1), RUN(), ACT(0), RUN(2)])
add("interim", 0, [SACK, GET1, REQ(6, 1), RUN(), ACT(2), RUN(2)])

# Keep-alive cap: GOAWAY after the second stream.
add("keepalive", KEEPALIVE, [SACK, headers(1, block()), REQ(0), headers(3, block()), REQ(0),
                             headers(5, block()), REQ(0), RUN(2)])

# Server close, graceful and forced, with deferred requests.
add("srvclose", SRVCLOSE, [SACK, GET1, REQ(7), headers(3, block()), REQ(3), RUN(2)])
add("srvclose_force", SRVCLOSE | HARD, [SACK, GET1, REQ(7), headers(3, block()), REQ(3), RUN(2)])
add("late", LATE | STREAM, [SACK, headers(1, block("POST", "/"), end_stream=False), REQ(5),
                            frame(DATA, 0, 1, b"abc"), RUN(2)])

# Raw: the input brings its own preface; and Upgrade: h2c.
add("raw_preface", RAW, [MAGIC, settings((3, 100)), SACK, GET1, REQ(0, 0), RUN(2)])
add("raw_bad_preface", RAW, [b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", RUN(2)])
add("upgrade", RAW, [b"GET /up HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                     b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", REQ(0, 0), RUN(),
                     MAGIC, settings(), SACK, headers(3, block()), REQ(0, 1), RUN(2)])

# Stream-state errors loom checks itself (frame walker).
add("data_after_end", 0, [SACK, GET1, REQ(0), RUN(), frame(DATA, 0, 1, b"late"), RUN(2)])
add("headers_after_rst", 0, [SACK, headers(1, block(), end_stream=False), REQ(7), RUN(),
                             frame(RST, 0, 1, struct.pack(">I", 8)) + headers(1, block()), RUN(2)])
add("lower_id", 0, [SACK, headers(5, block()), REQ(0), headers(3, block()), RUN(2)])
add("malformed", 0, [SACK, headers(1, block("GET", "/", [("connection", "close")])),
                     headers(3, block("GET", "/", [("Upper", "x")])),
                     headers(5, block("GET", "nopath")), headers(7, block("GET", "/", authority=None)),
                     headers(9, block("BREW", "/")), RUN(2)])
add("data_idle", 0, [SACK, frame(DATA, 0, 7, b"x"), RUN(2)])
add("reconnect", 0, [SACK, GET1, REQ(7), RUN(), [7 | (1 << 3)], RUN(2)])
add("half_close", 0, [SACK, GET1, REQ(7), RUN(), [6], RUN(), ACT(2), RUN(2)])

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(SEEDS.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(SEEDS), OUT))
