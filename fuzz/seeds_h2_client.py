#!/usr/bin/env python3
"""fuzz/seeds_h2_client.py - writes the seed corpus of fuzz_h2_client
(fuzz/corpus/h2_client/): HTTP/2 server byte streams made by hand (frames,
and HPACK literal fields without indexing), standard library only.

An input is: a configuration byte, the server's byte stream, then action
bytes read from the END backwards (see fuzz/fuzz_h2_client.c). A seed is
cfg + stream + reversed(actions), where the send actions cut exactly the
stream, so that no stream byte is taken for an action.

Configuration bits: 1 poll, 2 the harness sends SETTINGS + ACK first,
4 streamed response, 8/16 method (0 GET, 8 HEAD, 16 POST buffer, 24 POST
streamed), 32 small limits (a streamed upload has no length and starts
held), 64 redirects, 128 three requests at once.
Actions: op = a & 7, arg = a >> 3. 0-2 send a cut (arg < 16: arg + 1
bytes, else (arg - 15) * 64), 3 run the loop, 4 on a live request (arg >> 2
picks it; arg & 3: 0 and 3 pause or resume, 1 cancel from its next
callback, 2 hold or release its streamed upload), 5 cancel the oldest
(arg < 16) or start a request, 6 half-close (arg & 1) or close, 7 reset.
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
random.seed(18)

# Frame types and flags.
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 1, 1, 4, 8, 32
POLL, PRE, STREAM, HEAD, POST, UPLOAD, SMALL, REDIR, MULTI = 1, 2, 4, 8, 16, 24, 32, 64, 128


def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload


def hint(v, prefix):
    """An HPACK integer with an N-bit prefix (RFC 7541 section 5.1), flags 0."""
    top = (1 << prefix) - 1
    if v < top:
        return bytes([v])
    out, v = [top], v - top
    while v >= 128:
        out.append((v & 127) | 128)
        v >>= 7
    return bytes(out + [v])


def hpack(fields):
    """Literal fields without indexing, new names, no Huffman."""
    out = b""
    for n, v in fields:
        n, v = n.encode(), v.encode()
        out += b"\x00" + hint(len(n), 7) + n + hint(len(v), 7) + v
    return out


def headers(sid, fields, end=False, flags=0):
    return frame(HEADERS, END_HEADERS | (END_STREAM if end else 0) | flags, sid, hpack(fields))


def settings(*kv):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in kv))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)
SERVER_START = settings() + SETTINGS_ACK  # what the harness sends with PRE


def ok(sid, body=b"hello", extra=()):
    return headers(sid, [(":status", "200"), ("content-length", str(len(body)))] + list(extra)) + frame(
        DATA, END_STREAM, sid, body)


def send(n):
    """Action bytes that send exactly n bytes."""
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


def run(n=1):
    return [((n - 1) & 3) << 3 | 3]


PAUSE = [4]            # pause or resume the oldest live request
CANCEL_NEXT = [1 << 3 | 4]
HOLD = [2 << 3 | 4]    # hold the upload, or release it (body_ready)
CANCEL = [5]           # cancel the oldest
START = [16 << 3 | 5]  # another request
HALF, CLOSE, RESET = [1 << 3 | 6], [6], [7]


class Whole(bytes):
    """Bytes sent in one action (so that no new connection takes part of
    them): 1 to 16 bytes, or a multiple of 64 up to 1024."""


def seed(cfg, parts):
    stream, actions = b"", []
    for p in parts:
        if isinstance(p, Whole):
            n = len(p)
            assert 1 <= n <= 16 or (n % 64 == 0 and n <= 1024)
            stream += p
            actions += [((n - 1) << 3) if n <= 16 else ((15 + n // 64) << 3)] + run()
        elif isinstance(p, bytes):
            stream += p
            actions += send(len(p)) + run()
        else:
            actions += p
    return bytes([cfg]) + stream + bytes(reversed(actions))


def write(name, data):
    d = os.path.join(HERE, "corpus", "h2_client")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


seeds = {}
# A 200 with a body; raw (the input sends SETTINGS itself) and on poll.
seeds["ok"] = seed(PRE, [ok(1)])
seeds["ok_raw"] = seed(0, [SERVER_START + ok(1)])
seeds["ok_poll_stream"] = seed(POLL | PRE | STREAM, [ok(1)])
# A 200 over several DATA frames, and without content-length.
seeds["data_frames"] = seed(PRE | STREAM, [
    headers(1, [(":status", "200"), ("content-length", "12")]), frame(DATA, 0, 1, b"abcd"),
    frame(DATA, 0, 1, b"efgh"), frame(DATA, END_STREAM, 1, b"ijkl")])
seeds["data_nolength"] = seed(PRE, [
    headers(1, [(":status", "200"), ("content-type", "text/plain")]), frame(DATA, 0, 1, b"x" * 100),
    frame(DATA, END_STREAM, 1, b"")])
# Headers with CONTINUATION.
blk = hpack([(":status", "200"), ("x-one", "a" * 40), ("x-two", "b" * 40), ("content-length", "2")])
seeds["continuation"] = seed(PRE, [
    frame(HEADERS, 0, 1, blk[:20]), frame(CONT, 0, 1, blk[20:50]), frame(CONT, END_HEADERS, 1, blk[50:]),
    frame(DATA, END_STREAM, 1, b"ok")])
# Trailers.
seeds["trailers"] = seed(PRE | STREAM, [
    headers(1, [(":status", "200")]), frame(DATA, 0, 1, b"body"),
    headers(1, [("grpc-status", "0"), ("x-checksum", "abc")], end=True)])
# 204, 304, HEAD.
seeds["204"] = seed(PRE, [headers(1, [(":status", "204")], end=True)])
seeds["304"] = seed(PRE | STREAM, [headers(1, [(":status", "304"), ("etag", '"x"')], end=True)])
seeds["head"] = seed(PRE | HEAD, [headers(1, [(":status", "200"), ("content-length", "1000")], end=True)])
# 1xx interim answers, then 200.
seeds["interim"] = seed(PRE, [headers(1, [(":status", "100")]),
                              headers(1, [(":status", "103"), ("link", "</s.css>; rel=preload")]),
                              ok(1)])
# RST_STREAM before and during the response; REFUSED_STREAM (retried).
seeds["rst"] = seed(PRE, [frame(RST, 0, 1, struct.pack(">I", 2))])
seeds["rst_mid"] = seed(PRE | STREAM, [
    headers(1, [(":status", "200"), ("content-length", "10")]), frame(DATA, 0, 1, b"abc"),
    frame(RST, 0, 1, struct.pack(">I", 0))])
seeds["refused"] = seed(PRE, [frame(RST, 0, 1, struct.pack(">I", 7)), ok(3)])
# GOAWAY mid-response: stream 1 is answered, stream 3 finishes after the
# GOAWAY (in the same write), stream 5 above last-stream-id goes to a new
# connection (stream 1 there).
seeds["goaway"] = seed(PRE | MULTI, [
    ok(1), headers(3, [(":status", "200"), ("content-length", "2")]),
    Whole(frame(GOAWAY, 0, 0, struct.pack(">II", 3, 0)) +
          frame(DATA, END_STREAM | PADDED, 3, bytes([18]) + b"xy" + bytes(18)) +
          frame(PING, 0, 0, b"pingping")), run(3), ok(1)])
seeds["goaway_error"] = seed(PRE, [
    headers(1, [(":status", "200")]), frame(GOAWAY, 0, 0, struct.pack(">II", 1, 2) + b"debug")])
# PING.
seeds["ping"] = seed(PRE, [frame(PING, 0, 0, b"12345678"), ok(1)])
# SETTINGS changes: one stream at a time, a small window; three requests.
seeds["settings_one"] = seed(MULTI, [
    settings((3, 1), (4, 5)) + SETTINGS_ACK, run(2), ok(1), run(2), ok(3), run(2), ok(5)])
seeds["settings_table"] = seed(PRE, [settings((1, 0), (5, 20000), (6, 100)), ok(1)])
# WINDOW_UPDATE for a streamed upload the window held back.
seeds["window_upload"] = seed(UPLOAD, [
    settings((4, 10)) + SETTINGS_ACK, run(2), frame(WINDOW, 0, 0, struct.pack(">I", 100)),
    frame(WINDOW, 0, 1, struct.pack(">I", 100)), run(2), ok(1)])
seeds["upload_held"] = seed(UPLOAD | SMALL | STREAM, [run(2), settings() + SETTINGS_ACK, HOLD,
                                                      run(2), ok(1)])
seeds["post"] = seed(PRE | POST | STREAM, [ok(1, b"posted")])
# PUSH_PROMISE: push is off, a connection error.
seeds["push"] = seed(PRE, [
    frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2) + hpack([(":method", "GET"), (":scheme", "http"),
                                                             (":path", "/p"), (":authority", "x")])),
    ok(1)])
# Padding on HEADERS and DATA.
pad_blk = hpack([(":status", "200"), ("content-length", "3")])
seeds["padding"] = seed(PRE, [
    frame(HEADERS, END_HEADERS | PADDED, 1, bytes([5]) + pad_blk + bytes(5)),
    frame(DATA, PADDED | END_STREAM, 1, bytes([10]) + b"abc" + bytes(10))])
seeds["priority"] = seed(PRE, [
    frame(HEADERS, END_HEADERS | PRIO, 1, struct.pack(">IB", 0, 15) + pad_blk),
    frame(PRIORITY, 0, 1, struct.pack(">IB", 0, 1)), frame(DATA, END_STREAM, 1, b"abc")])
# A 301 redirect to the same origin (stream 3 on the same connection).
seeds["redirect"] = seed(PRE | REDIR, [
    headers(1, [(":status", "301"), ("location", "/next")], end=True), run(2), ok(3)])
seeds["redirect_post"] = seed(PRE | REDIR | POST, [
    headers(1, [(":status", "307"), ("location", "/again"), ("content-length", "0")], end=True),
    run(2), ok(3)])
# Streamed, paused and resumed; cancelled from on_body; cancelled outright.
seeds["pause"] = seed(PRE | STREAM, [
    headers(1, [(":status", "200")]), PAUSE, frame(DATA, 0, 1, b"a" * 200), run(2), PAUSE,
    frame(DATA, END_STREAM, 1, b"b" * 10)])
seeds["cancel_body"] = seed(PRE | STREAM | MULTI, [
    headers(1, [(":status", "200")]), CANCEL_NEXT, frame(DATA, 0, 1, b"a" * 50), ok(3), ok(5)])
seeds["cancel"] = seed(PRE | MULTI, [headers(1, [(":status", "200")]), CANCEL, ok(3), START, run(2), ok(7)])
# Small limits: too many and too large fields, a body over the limit.
seeds["small_fields"] = seed(PRE | SMALL, [headers(1, [(":status", "200")] + [("x-%d" % i, "v" * 50) for i in range(6)], end=True)])
seeds["small_body"] = seed(PRE | SMALL | STREAM, [headers(1, [(":status", "200")]), frame(DATA, END_STREAM, 1, b"z" * 100)])
# The connection closes or is reset mid-response; half-closed.
seeds["close_mid"] = seed(PRE, [headers(1, [(":status", "200"), ("content-length", "10")]),
                                frame(DATA, 0, 1, b"abc"), CLOSE])
seeds["reset_mid"] = seed(PRE | MULTI, [headers(1, [(":status", "200")]), RESET])
seeds["half"] = seed(PRE, [ok(1), HALF])
# Malformed: no :status, DATA beyond content-length, an uppercase name.
seeds["nostatus"] = seed(PRE, [headers(1, [("x", "y")], end=True)])
seeds["beyond"] = seed(PRE, [headers(1, [(":status", "200"), ("content-length", "2")]),
                             frame(DATA, END_STREAM, 1, b"abcdef")])
seeds["upper"] = seed(PRE, [headers(1, [(":status", "200"), ("X-Up", "1")], end=True)])

for name, data in sorted(seeds.items()):
    write(name, data)
print("wrote %d seeds to fuzz/corpus/h2_client/" % len(seeds))
