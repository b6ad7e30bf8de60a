"""tests/http/h2_limits_peer.py - a scripted HTTP/2 client (h2c prior
knowledge, raw frames, HPACK from python3-hpack) for test_h2_server_limits:
Expect: 100-continue and max_keepalive_requests on HTTP/2 (streams behind
the last one in the same read refused). Usage:
h2_limits_peer.py PORT SCENARIO [PATH]. Prints what the server did, one fact
a line, for the C test to check; exits 0 unless the scenario is unknown.
"""
import select
import struct
import sys

from h2_peer import (ACK, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, RST, SETTINGS,
                     WINDOW, frame)
from h2_peer import Peer as RawPeer


class Peer(RawPeer):
    """h2_peer.py's raw peer (frames, SETTINGS acks), started at once."""

    def __init__(self, port):
        super().__init__(port)
        self.start()

    def headers(self, sid, path, method="GET", end=True, extra=()):
        hb = self.enc.encode([(":method", method), (":scheme", "http"), (":path", path),
                              (":authority", "localhost")] + list(extra))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hb))

    def status_of(self, p):
        for k, v in self.dec.decode(p):
            if k in (":status", b":status"):
                return int(v)
        return None


def expect(p, path, value):
    """POST with Expect: `value` and a 5-byte body, sent only once a 100
    came (or straight away if the answer came first)."""
    p.headers(1, path, "POST", end=False,
              extra=[("expect", value), ("content-length", "5")])
    status, body, sent = None, b"", False
    while True:
        f = p.recv_frame()
        if f is None:
            print("eof")
            return
        t, fl, sid, pl = f
        if sid != 1:
            continue
        if t == HEADERS:
            status = p.status_of(pl)
            print("status", status)
            if status == 100 and not sent:
                sent = True
                p.send(frame(DATA, END_STREAM, 1, b"hello"))
        elif t == DATA:
            body += pl
        elif t == RST:
            print("rst", struct.unpack(">I", pl)[0])
            return
        if fl & END_STREAM and t in (HEADERS, DATA):
            print("body", body.decode())
            return


def max_requests(p):
    """Four requests at once to a server that serves three a connection:
    its GOAWAY names the third, the first three are answered, the fourth
    is not, then the connection ends."""
    p.headers(1, "/")
    p.headers(3, "/")
    p.headers(5, "/")
    p.headers(7, "/")
    done = set()
    while True:
        f = p.recv_frame()
        if f is None:
            break
        t, fl, sid, pl = f
        if t == GOAWAY:
            last, code = struct.unpack(">II", pl[:8])
            print("goaway %d last %d" % (code, last & 0x7FFFFFFF))
        elif t == HEADERS:
            p.status_of(pl)
        elif t == RST:
            print("rst", sid)
        if t in (HEADERS, DATA) and fl & END_STREAM:
            done.add(sid)
            if len(done) == 4:  # no limit: the connection stays open
                print("answered", " ".join(str(s) for s in sorted(done)))
                return
    print("answered", " ".join(str(s) for s in sorted(done)))
    print("eof")


def max_requests_batch(p, error):
    """The same four requests in one segment (so in one read of the
    server's): nghttp2 takes new streams until the server's GOAWAY has
    been sent, not just queued, so stream 7 reached the server behind the
    one that decided the GOAWAY naming 5. It must be refused
    (REFUSED_STREAM: the client may retry it), not answered; with `error`
    a bad frame follows (a PING of 4 bytes: FRAME_SIZE_ERROR), and the
    GOAWAY that ends the connection still names 5, not 7 (RFC 9113
    section 6.8: the last stream id never grows)."""
    hb = b""
    for sid in (1, 3, 5, 7):
        hb += frame(HEADERS, END_HEADERS | END_STREAM, sid,
                    p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                                  (":authority", "localhost")]))
    if error:
        hb += frame(6, 0, 0, b"1234")
    p.send(hb)
    done = set()
    while True:
        f = p.recv_frame()
        if f is None:
            break
        t, fl, sid, pl = f
        if t == GOAWAY:
            last, code = struct.unpack(">II", pl[:8])
            print("goaway %d last %d" % (code, last & 0x7FFFFFFF))
        elif t == HEADERS:
            p.status_of(pl)
        elif t == RST:
            print("rst %d code %d" % (sid, struct.unpack(">I", pl)[0]))
        if t in (HEADERS, DATA) and fl & END_STREAM:
            done.add(sid)
    print("answered", " ".join(str(s) for s in sorted(done)))
    print("eof")


def interleave(port, n):
    """n connections at once, three /big requests each, read a little from
    each in turn: every answer (a header block larger than one frame, and
    a 100000-byte body) must carry its connection's letter only. The
    server packs all of its connections' frames in one buffer."""
    peers = [Peer(port) for _ in range(n)]
    want = {}
    for k, p in enumerate(peers):
        p.s.setblocking(False)
        for sid in (1, 3, 5):
            p.headers(sid, "/big?c=%s" % chr(97 + k))
            want[(k, sid)] = {"body": b"", "hdr": None, "done": False}
    bad = 0
    while not all(w["done"] for w in want.values()):
        r, _, _ = select.select([p.s for p in peers], [], [], 5)
        if not r:
            print("stalled")
            return
        for k, p in enumerate(peers):
            if p.s not in r:
                continue
            try:
                b = p.s.recv(4096)
            except BlockingIOError:
                continue
            if not b:
                print("eof on", k)
                return
            p.buf += b
            while len(p.buf) >= 9:
                ln = int.from_bytes(p.buf[:3], "big")
                if len(p.buf) < 9 + ln:
                    break
                t, fl = p.buf[3], p.buf[4]
                sid = struct.unpack(">I", p.buf[5:9])[0] & 0x7FFFFFFF
                pl = p.buf[9:9 + ln]
                p.buf = p.buf[9 + ln:]
                p.s.setblocking(True)
                if t == SETTINGS and not fl & ACK:
                    p.send(frame(SETTINGS, ACK, 0))
                elif t == HEADERS:
                    p.hb = pl
                    if fl & END_HEADERS:
                        want[(k, sid)]["hdr"] = dict(p.dec.decode(p.hb))
                elif t == 9:  # CONTINUATION
                    p.hb += pl
                    if fl & END_HEADERS:
                        want[(k, sid)]["hdr"] = dict(p.dec.decode(p.hb))
                elif t == DATA:
                    want[(k, sid)]["body"] += pl
                    if pl:
                        p.send(frame(WINDOW, 0, 0, struct.pack(">I", len(pl))) +
                               frame(WINDOW, 0, sid, struct.pack(">I", len(pl))))
                p.s.setblocking(False)
                if t in (HEADERS, DATA, 9) and fl & END_STREAM:
                    want[(k, sid)]["done"] = True
                if t in (RST, GOAWAY):
                    print("reset on", k, sid)
                    return
    for (k, sid), w in sorted(want.items()):
        c = chr(97 + k)
        h = w["hdr"] or {}
        xb = h.get("x-big", h.get(b"x-big", ""))
        xb = xb.decode() if isinstance(xb, bytes) else xb
        if w["body"] != c.encode() * 100000 or xb != c * 20000:
            bad += 1
    print("interleave", len(want), "answers", bad, "bad")


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    if what == "interleave":
        interleave(port, 4)
        return 0
    p = Peer(port)
    if what == "expect":
        expect(p, sys.argv[3], "100-continue")
    elif what == "expect_bad":
        expect(p, sys.argv[3], "something-else")
    elif what == "max_requests":
        max_requests(p)
    elif what == "max_requests_batch":
        max_requests_batch(p, False)
    elif what == "max_requests_batch_error":
        max_requests_batch(p, True)
    else:
        print("unknown scenario")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
