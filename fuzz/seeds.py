#!/usr/bin/env python3
"""fuzz/seeds.py - writes the seed corpora of the state-machine targets
(fuzz/corpus/http_server/ and fuzz/corpus/http_client/).

An input of those targets is: a configuration byte, the byte stream, then
action bytes read from the END backwards (see the targets' header comments).
So a seed is built as cfg + stream + reversed(actions), where the send
actions cut exactly the stream.
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def send(n):
    """Action bytes that send exactly n bytes (op 0, cuts of 1..16 or k*64)."""
    out = []
    while n > 0:
        if n >= 64 and random.random() < 0.5:
            k = min(n // 64, 16)
            out.append(((15 + k) << 3) | 0)
            n -= k * 64
        else:
            k = min(n, random.randint(1, 16))
            out.append(((k - 1) << 3) | 0)
            n -= k
    return out


def seed(cfg, parts):
    """parts: a list of bytes (sent, in random cuts) and lists of action bytes."""
    stream, actions = b"", []
    for p in parts:
        if isinstance(p, bytes):
            stream += p
            actions += send(len(p))
        else:
            actions += p
    return bytes([cfg]) + stream + bytes(reversed(actions))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- fuzz_http_server ------------------------------------------------------------
# cfg: 1 poll, 2 streamed bodies, 4 small limits (and high water, and client
# window), 8 keep-alive cap, 16 client goes first, 32 reset, 64 server close,
# 128 force.
# Actions: op = a & 7, arg = a >> 3. 0-2 send, 3 run (and the client reads),
# 4-5 act on the oldest deferred request (a running stream: arg & 1 writes
# (arg >> 1) % 4 * 5000 bytes, else ends; else arg & 3: 0 resume, 1 pause,
# 2-3 answer or release), 6 half-close, 7 close and reconnect (arg & 1:
# reset; twice at most).
# on_request takes one: 0-1 answer (arg: status, length, Connection: close),
# 2 stream now, 3 release, 4 start a stream, 5 defer and pause the body,
# 6-7 defer.
def act(arg, op=4):
    return [(arg << 3) | op]


NOW, STREAM, RELEASE, START, DEFER_PAUSE, DEFER = 0, 2, 3, 4, 5, 6
RUN = [(3 << 3) | 3]
GET = b"GET /a?a=1&b=%20 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
POST_CL = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
POST_CH = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;e=1\r\nhello\r\n3\r\nabc\r\n0\r\nT: v\r\n\r\n")


def server_seeds():
    random.seed(11)
    s = {}
    s["get"] = seed(0, [GET, [NOW], RUN])
    s["pipeline"] = seed(0, [GET + GET + b"HEAD / HTTP/1.1\r\nHost: y\r\n\r\n",
                             [NOW | 8, NOW | 16, NOW], RUN])
    s["deferred"] = seed(0, [POST_CL, [DEFER], RUN, act(2), GET, [DEFER], act(6), RUN])
    s["chunked_stream"] = seed(2, [POST_CH[:70], [DEFER_PAUSE], POST_CH[70:], RUN,
                                   act(0), RUN, act(2), RUN])
    s["continue"] = seed(2, [b"PUT /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                             b"Content-Length: 3\r\n\r\n", [DEFER], RUN, b"abc", act(2)])
    s["http10_stream"] = seed(0, [b"GET /s HTTP/1.0\r\n\r\n", [STREAM | (5 << 3)]])
    s["garbage"] = seed(0, [GET, [NOW], b"\x00BAD REQUEST\r\n\r\n", RUN])
    s["too_big"] = seed(4, [b"GET /" + b"x" * 80 + b" HTTP/1.1\r\nHost: x\r\n\r\n", RUN,
                            POST_CL.replace(b"5\r\n\r\nhello", b"100\r\n\r\n" + b"y" * 100)])
    s["reconnect"] = seed(8, [GET, [NOW], GET, [NOW], GET, RUN, [7], GET, [RELEASE], RUN])
    s["half_close"] = seed(0, [GET, [DEFER], [6], RUN, act(2 | 4)])
    s["server_close"] = seed(64 | 16, [GET, [START | (2 << 3)], RUN, act(1 | (3 << 1)), GET])
    s["force_close"] = seed(64 | 128 | 32 | 1, [POST_CL, [DEFER], GET])
    s["stream_cl"] = seed(1 | 2, [POST_CH, [START | (6 << 3)], act(3), act(0), GET,
                                  [STREAM | (3 << 3)]])
    # Findings, minimised: loom_http_req_version() said 2 for HTTP/1.2.
    s["crash-version-http12"] = seed(0, [b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", [NOW]])
    # loom_http_req_peer() said LOOM_ENOTCONN (not LOOM_ECLOSED) for a request
    # read after the client had reset the connection (poll: the connection is
    # accepted in one iteration, read in the next).
    req = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n"
    req += b"X: " + b"y" * (64 - 4 - 3 - len(req)) + b"\r\n\r\n"
    s["crash-peer-after-reset"] = bytes([1]) + req + bytes([(1 << 3) | 7, (16 << 3) | 0])
    # (Seeds added later come last, so that the ones before keep their cuts.)
    # A small client window and high water: 15 KB stream writes queue up.
    s["backpressure"] = seed(4, [GET, [START], act(7), act(7), act(7), act(7), RUN, act(7),
                                 GET, act(0 | 2)])
    # (crash-resume-null-input is the fuzzer's own, minimised: a streamed
    # body resumed when nothing was stored ran the state machine over a NULL
    # buffer, UBSan in server.c loom__hconn_process.)
    for k, v in s.items():
        write("http_server", k, v)


# --- fuzz_http_client ------------------------------------------------------------
# cfg: 1 poll, 2 streamed response, 4/8/12 HEAD/POST/PUT streamed (GET: 0),
# 16 small limits, 32 redirects, 64 keep-alive, 128 the last close is a reset.
# Actions: 0-2 send, 3 run, 4 pause/resume (arg & 1: which request),
# 5 cancel (arg & 14 == 14) or start the second request (arg & 6 == 2),
# 6 half-close, 7 close (arg & 1: reset).
C_RUN = [(1 << 3) | 3]
C_PAUSE = [4]
C_CANCEL = [(14 << 3) | 5]
C_SECOND = [(2 << 3) | 5]
C_CLOSE = [7]


def client_seeds():
    random.seed(12)
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
    s = {}
    s["ok"] = seed(0, [ok, C_RUN])
    s["chunked"] = seed(0, [chunked, C_RUN])
    s["continue_flood"] = seed(0, [b"HTTP/1.1 100 Continue\r\n\r\n" * 20, ok])
    s["cl_lie"] = seed(0, [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", C_CLOSE])
    s["until_close"] = seed(128, [b"HTTP/1.0 200 OK\r\n\r\nall of it", C_RUN, C_CLOSE])
    s["head"] = seed(4, [b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", C_RUN])
    s["no_body"] = seed(64, [b"HTTP/1.1 204 No Content\r\n\r\n", C_RUN, C_SECOND,
                             b"HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n"])
    s["redirect"] = seed(32, [b"HTTP/1.1 302 Found\r\nLocation: /next\r\n"
                              b"Content-Length: 0\r\n\r\n", C_RUN, ok])
    s["stream_pause"] = seed(2, [chunked[:60], C_PAUSE, C_RUN, C_PAUSE, chunked[60:]])
    s["garbage"] = seed(0, [b"HTTP/1.1 2OO OK\r\n\x00\x01\r\n\r\n"])
    s["keepalive"] = seed(64, [ok, C_RUN, C_SECOND, C_RUN, chunked, C_RUN])
    s["pipelined"] = seed(64 | 2, [C_SECOND, C_RUN, ok + chunked, C_RUN])
    s["post_continue"] = seed(8, [b"HTTP/1.1 100 Continue\r\n\r\n", C_RUN,
                                  b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"])
    s["small_limits"] = seed(16, [b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 10
                                  + b"Content-Length: 100\r\n\r\n" + b"z" * 100])
    s["upload_chunked"] = seed(12 | 16 | 2, [C_RUN, C_RUN, chunked])
    s["cancel"] = seed(2, [chunked[:50], C_CANCEL, chunked[50:]])
    s["reset_early"] = seed(64, [b"HTTP/1.1 200 OK\r\nContent-Len", [(1 << 3) | 7], C_SECOND])
    # Findings, minimised: a redirect to a URL without a path ("//host")
    # rendered its request line from a NULL path (UBSan: zero offset applied
    # to a null pointer, client.c hc_render_head).
    s["crash-redirect-no-path"] = seed(32, [b"HTTP/1.1 302 Found\r\nLocation: //127.0.0.1\r\n"
                                            b"Content-Length: 0\r\n\r\n"])
    for k, v in s.items():
        write("http_client", k, v)


if __name__ == "__main__":
    server_seeds()
    client_seeds()
