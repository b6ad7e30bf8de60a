"""tests/http/h2_peer.py - a scripted HTTP/2 client for test_h2_server_python:
raw frames (so that it can misbehave), HPACK from python3-hpack (python3-h2's
dependency). Usage: h2_peer.py PORT SCENARIO. Prints what the server did,
one fact a line, for the C test to check; exits 0 unless the socket failed.
"""
import socket
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW, CONT = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


class Peer:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()

    def send(self, b):
        try:
            self.s.sendall(b)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server ended the connection: what it sent is read next

    def start(self, ack=True):
        self.send(PREFACE + frame(SETTINGS, 0, 0))
        self.ack = ack

    def recv_frame(self):
        """The next frame (type, flags, sid, payload), or None at eof."""
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    t, fl = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    p = self.buf[9 : 9 + n]
                    self.buf = self.buf[9 + n :]
                    if t == SETTINGS and not fl & ACK and getattr(self, "ack", True):
                        self.send(frame(SETTINGS, ACK, 0))
                    return t, fl, sid, p
            try:
                b = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return None
            if not b:
                return None
            self.buf += b

    def request(self, sid, path, end=True, extra=()):
        hb = self.enc.encode(
            [(":method", "GET" if end else "POST"), (":scheme", "http"), (":path", path),
             (":authority", "localhost")] + list(extra))
        self.send(frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hb))

    def until(self, pred):
        """Reads frames until pred(frame) is true; returns that frame or None."""
        while True:
            f = self.recv_frame()
            if f is None or pred(f):
                return f

    def response(self, sid):
        """Reads stream sid's answer: (status, body, error) - error is
        "rst N" or "goaway N" if it ended so."""
        status, body = None, b""
        while True:
            f = self.recv_frame()
            if f is None:
                return status, body, "eof"
            t, fl, s, p = f
            if t == GOAWAY:
                return status, body, "goaway %d" % struct.unpack(">I", p[4:8])[0]
            if s != sid:
                continue
            if t == HEADERS:
                for k, v in self.dec.decode(p):
                    if k in (":status", b":status"):
                        status = int(v)
            elif t == DATA:
                body += p
                if p:
                    self.send(frame(WINDOW, 0, 0, struct.pack(">I", len(p))) +
                              frame(WINDOW, 0, sid, struct.pack(">I", len(p))))
            elif t == RST:
                return status, body, "rst %d" % struct.unpack(">I", p)[0]
            if fl & END_STREAM and t in (HEADERS, DATA) and (status or 0) >= 200:
                return status, body, None


def goaway_code(f):
    return "goaway %d" % struct.unpack(">I", f[3][4:8])[0] if f else "eof"


def eof(p):
    """Reads to the end; returns the last GOAWAY code seen, then eof."""
    last = None
    while True:
        f = p.recv_frame()
        if f is None:
            return (goaway_code(last) + " " if last else "") + "eof"
        if f[0] == GOAWAY:
            last = f


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    p = Peer(port)
    if what == "preface":
        p.send(b"PRI * HTTP/2.0\r\n\r\nXY\r\n\r\n" + frame(SETTINGS, 0, 0))
        print(eof(p))
    elif what == "closed_stream":
        p.start()
        p.request(1, "/")
        print("status", p.response(1)[0])
        # The client closed stream 1 itself: a late frame on it is a
        # connection error STREAM_CLOSED (RFC 9113 section 5.1).
        p.send(frame(DATA, END_STREAM, 1, b"late"))
        p.request(3, "/")
        st, body, err = p.response(3)
        print("status", st, err)
    elif what == "window":
        p.start()
        p.send(frame(WINDOW, 0, 0, struct.pack(">I", 0x7FFFFFFF)))
        print(eof(p))
    elif what == "noack":
        p.start(ack=False)
        print(eof(p))
    elif what == "goaway_mid":
        p.start()
        p.request(1, "/stream")
        p.until(lambda f: f[0] == DATA and f[2] == 1)
        p.send(frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)))
        time.sleep(0.05)
        p.s.close()
        print("closed")
    elif what == "rst_deferred":
        p.start()
        p.request(1, "/forever")
        time.sleep(0.1)
        p.send(frame(RST, 0, 1, struct.pack(">I", 8)))
        p.request(3, "/")
        st, body, err = p.response(3)
        print("status", st, body.decode(), err)
    elif what == "rapid_reset":
        p.start()
        out = []
        for i in range(2000):
            sid = 1 + 2 * i
            hb = p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/forever"),
                               (":authority", "localhost")])
            out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, hb))
            out.append(frame(RST, 0, sid, struct.pack(">I", 8)))
        try:
            p.send(b"".join(out))
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(eof(p))
    elif what == "made_you_reset":
        # MadeYouReset (CVE-2025-8671): rounds of 50 streams, each made to
        # be reset by the server at once (WINDOW_UPDATE past 2^31-1 on the
        # stream: FLOW_CONTROL_ERROR), each round read until its resets
        # came. The server must end this (GOAWAY) long before 2,000.
        p.start()
        path = sys.argv[3] if len(sys.argv) > 3 else "/forever"
        sid, resets, last = 1, 0, None
        for _ in range(40):
            out = []
            for _ in range(50):
                hb = p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", path),
                                   (":authority", "localhost")])
                out.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, hb))
                out.append(frame(WINDOW, 0, sid, struct.pack(">I", 0x7FFFFFFF)))
                sid += 2
            p.send(b"".join(out))
            got = 0
            while got < 50 and last is None:
                f = p.recv_frame()
                if f is None:
                    break
                if f[0] == RST:
                    got += 1
                elif f[0] == GOAWAY:
                    last = f
            resets += got
            if last is not None or got < 50:
                break
        print("resets", resets, eof(p) if last is None else goaway_code(last) + " " + eof(p))
    elif what == "malformed_then_bad_ping":
        # A malformed request (an upper-case field name: RST_STREAM
        # PROTOCOL_ERROR), then a connection error of another kind (a PING
        # of 9 bytes: GOAWAY FRAME_SIZE_ERROR, RFC 9113 section 6.7).
        p.start()
        p.request(1, "/", extra=[("X-Upper", "1")])
        f = p.until(lambda f: f[0] in (RST, GOAWAY))
        print("rst %d" % struct.unpack(">I", f[3])[0] if f and f[0] == RST else "no rst")
        p.send(frame(PING, 0, 0, b"123456789"))
        print(eof(p))
    elif what == "continuation":
        p.start()
        hb = p.enc.encode([(":method", "GET"), (":scheme", "http"), (":path", "/"),
                           (":authority", "localhost")] +
                          [("x-h%d" % i, "v" * 20) for i in range(200)])
        parts = [hb[i : i + 16] for i in range(0, len(hb), 16)]
        out = frame(HEADERS, END_STREAM, 1, parts[0])
        for i, part in enumerate(parts[1:]):
            out += frame(CONT, END_HEADERS if i == len(parts) - 2 else 0, 1, part)
        try:
            p.send(out)
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(eof(p))
    elif what == "hpack_bomb":
        p.start()
        p.request(1, "/", extra=[("x-bomb", "a" * 4000)] * 60)
        st, body, err = p.response(1)
        print("status", st, err)
        p.request(3, "/")
        print("status", p.response(3)[0])
    elif what == "ping_flood":
        p.start(ack=True)
        try:
            p.send(b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(20000)))
        except (BrokenPipeError, ConnectionResetError):
            pass
        print(eof(p))
    elif what == "zero_window":
        # SETTINGS_INITIAL_WINDOW_SIZE 0: the answer's body can never leave.
        p.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0)))
        p.request(1, "/big")
        st, body, err = p.response(1)
        print("status", st, len(body), err)
        p.request(3, "/")
        p.send(frame(WINDOW, 0, 3, struct.pack(">I", 100)))
        print("status", p.response(3)[0])
    elif what == "body_stall":
        # A POST whose body never comes: the body timeout ends it.
        p.start()
        p.request(1, "/upload", end=False)
        p.send(frame(DATA, 0, 1, b"abc"))
        print(eof(p))
    elif what == "graceful":
        p.start()
        p.request(1, "/close")
        f = p.until(lambda f: f[0] == GOAWAY)
        print(goaway_code(f), "last", struct.unpack(">I", f[3][:4])[0] & 0x7FFFFFFF)
        st, body, err = p.response(1)
        print("status", st, body.decode(), err)
        print(eof(p))
    elif what == "graceful_batch":
        # /close and another request in one segment: the server closes from
        # stream 1's on_request, while nghttp2 still takes stream 3 (it
        # takes new streams until the GOAWAY is sent): 3 is refused
        # (REFUSED_STREAM), never answered, and the GOAWAY names 1.
        p.start()
        hb = b""
        for sid, path in ((1, "/close"), (3, "/hi")):
            hb += frame(HEADERS, END_HEADERS | END_STREAM, sid, p.enc.encode(
                [(":method", "GET"), (":scheme", "http"), (":path", path),
                 (":authority", "localhost")]))
        p.send(hb)
        while True:
            f = p.recv_frame()
            if f is None:
                break
            t, fl, sid, pl = f
            if t == GOAWAY:
                print(goaway_code(f), "last", struct.unpack(">I", pl[:4])[0] & 0x7FFFFFFF)
            elif t == RST:
                print("rst", sid, "code", struct.unpack(">I", pl)[0])
            elif t == HEADERS:
                st = dict(p.dec.decode(pl)).get(":status")
                print("stream", sid, "status", st.decode() if isinstance(st, bytes) else st)
        print("eof")
    elif what == "upload_pause":
        p.start()
        p.request(1, "/upload", end=False)
        body = b"x" * 200000
        sent, window = 0, 65535
        # Send what the stream's window allows; the server gives it back as
        # the paused application takes the bytes.
        while sent < len(body):
            n = min(16384, len(body) - sent, window)
            if n > 0:
                p.send(frame(DATA, END_STREAM if sent + n == len(body) else 0, 1,
                             body[sent : sent + n]))
                sent += n
                window -= n
                continue
            f = p.recv_frame()
            if f is None:
                break
            if f[0] == WINDOW and f[2] == 1:
                window += struct.unpack(">I", f[3])[0]
        st, b, err = p.response(1)
        print("status", st, b.decode(), err)
    elif what == "expect":
        # Expect: 100-continue, the head alone first (as curl does): prints
        # each interim status, sends the 5000-byte body after a 100, then
        # the final status and how the stream ended; an answer that came
        # before the body must be followed by RST_STREAM (NO_ERROR).
        p.start()
        p.request(1, sys.argv[3], end=False,
                  extra=[("expect", "100-continue"), ("content-length", "5000")])
        status, body, interim = None, b"", 0
        while True:
            f = p.recv_frame()
            if f is None:
                print("eof")
                return 0
            t, fl, s, pl = f
            if s != 1:
                continue
            if t == HEADERS:
                st = int(dict(p.dec.decode(pl)).get(":status"))
                if st < 200:
                    interim += 1
                    print("interim", st)
                    p.send(frame(DATA, END_STREAM, 1, b"e" * 5000))
                else:
                    status = st
            elif t == DATA:
                body += pl
            elif t == RST:
                print("rst before the end", struct.unpack(">I", pl)[0])
                return 0
            if fl & END_STREAM and status:
                break
        print("status", status, body.decode().strip())
        if not interim:
            f = p.until(lambda f: f[2] == 1 and f[0] == RST)
            print("rst", struct.unpack(">I", f[3])[0] if f else "none")
    else:
        print("unknown scenario")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
