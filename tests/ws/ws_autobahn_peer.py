#!/usr/bin/python3
"""ws_autobahn_peer.py - the peer of test_ws_autobahn: an Autobahn-style
frame-level script (raw sockets, frames built by hand) in two modes.

  server PORT MAXMSG   plays the client against loom's echo server on PORT
                       (Autobahn's fuzzingclient): case groups 1-7, 9, 10,
                       12/13 and the opening handshake.
  client               plays the server for loom's client (Autobahn's
                       fuzzingserver): prints "PORT NCASES NREFUSED", then
                       serves one case per connection, in order; loom's
                       client echoes every message.

Every case checks the outcome RFC 6455 / RFC 7692 require (echoes, pongs,
close codes, the server ending TCP); each prints PASS or FAIL with its name,
and the script ends with "N passed, M failed" and exit status 1 on any
failure. Bounded: socket timeouts of a few seconds, at most a few MiB per
case.
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
HOST = "127.0.0.1"
RESULTS = []


def xor_mask(data, key):
    """Masks data with a 4-byte key (fast: one big-integer XOR)."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def frame(op, payload=b"", fin=True, rsv=0, mask=True, lenenc=None):
    """One frame: op is the opcode; lenenc forces 16 or 64 for the length."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    mb = 0x80 if mask else 0
    enc = lenenc or (7 if n < 126 else 16 if n < 65536 else 64)
    if enc == 7:
        h = bytes([b0, mb | n])
    elif enc == 16:
        h = bytes([b0, mb | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mb | 127]) + struct.pack(">Q", n)
    if not mask:
        return h + payload
    key = os.urandom(4)
    return h + key + xor_mask(payload, key)


def cp(code, reason=b""):
    return struct.pack(">H", code) + reason


def report(name, ok, detail=""):
    RESULTS.append(bool(ok))
    print("%s %s %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)


class Closed(Exception):
    pass


class Peer:
    """A raw WebSocket endpoint over a blocking socket."""

    def __init__(self, s, masked):
        self.s = s
        self.masked = masked  # whether the frames it sends are masked
        self.buf = b""
        self.inflater = None

    def send(self, data, chop=0, delay=0.0):
        try:
            if not chop:
                self.s.sendall(data)
                return
            for i in range(0, len(data), chop):
                self.s.sendall(data[i:i + chop])
                if delay:
                    time.sleep(delay)
        except OSError:
            pass  # the other side may have failed the connection already

    def f(self, op, payload=b"", **kw):
        kw.setdefault("mask", self.masked)
        return frame(op, payload, **kw)

    def recvn(self, n, timeout):
        end = time.time() + timeout
        while len(self.buf) < n:
            t = end - time.time()
            if t <= 0:
                raise TimeoutError
            self.s.settimeout(t)
            try:
                d = self.s.recv(1 << 20)
            except socket.timeout:
                raise TimeoutError
            except ConnectionResetError:
                raise Closed("reset")
            if not d:
                raise Closed("eof")
            self.buf += d
        r, self.buf = self.buf[:n], self.buf[n:]
        return r

    def frame(self, timeout=3.0):
        """The next frame: (first byte, payload unmasked, masked?)."""
        h = self.recvn(2, timeout)
        n = h[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.recvn(2, timeout))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.recvn(8, timeout))[0]
        key = self.recvn(4, timeout) if h[1] & 0x80 else None
        p = self.recvn(n, timeout)
        return h[0], xor_mask(p, key) if key else p, key is not None

    def message(self, timeout=5.0):
        """A whole message (b0 with FIN, data inflated), or a control frame
        outside one; control frames inside a message are skipped. Frames must
        be masked exactly when the peer is a client."""
        parts, first = [], None
        while True:
            b0, p, m = self.frame(timeout)
            if m == self.masked:
                raise ValueError("frame masked=%s from the %s" % (m, "server" if self.masked else "client"))
            op = b0 & 0xF
            if op >= 8:
                if first is None:
                    return b0, p
                continue
            if first is None:
                first = b0
            parts.append(p)
            if b0 & 0x80:
                data = b"".join(parts)
                if first & 0x40:
                    data = self.inflate(data)
                return 0x80 | (first & 0xF), data

    def inflate(self, data):
        wbits, ctx = self.zin
        if self.inflater is None or not ctx:
            self.inflater = zlib.decompressobj(-wbits)
        return self.inflater.decompress(data + b"\x00\x00\xff\xff")

    def close_code(self, timeout=3.0):
        """The code of the next close frame (1005: none), or 'eof' or
        'timeout'."""
        try:
            while True:
                b0, p, m = self.frame(timeout)
                if b0 & 0xF == 8:
                    return struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
        except TimeoutError:
            return "timeout"
        except Closed:
            return "eof"

    def tcp_ends(self, timeout=3.0):
        try:
            self.recvn(1 << 30, timeout)
        except Closed:
            return True
        except TimeoutError:
            return False


def read_head(p):
    """The HTTP head at the start of the stream (what follows stays)."""
    while b"\r\n\r\n" not in p.buf:
        p.s.settimeout(5)
        d = p.s.recv(65536)
        if not d:
            raise Closed("eof in the head")
        p.buf += d
    head, p.buf = p.buf.split(b"\r\n\r\n", 1)
    return head


def split_z(op, msg, fs, mask):
    """A message compressed whole (window 15), its bytes cut into fs-byte
    frames at any point (Autobahn's autoFragmentSize), not at flush
    boundaries."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    z = (comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH))[:-4]
    pieces = [z[i:i + fs] for i in range(0, len(z), fs)]
    return b"".join(frame(op if i == 0 else 0, pc, fin=(i == len(pieces) - 1),
                          rsv=4 if i == 0 else 0, mask=mask) for i, pc in enumerate(pieces))


def echoed(c, op, data, timeout=5.0):
    return c.message(timeout) == (0x80 | op, data)


def normal_close(c):
    c.send(c.f(8, cp(1000)))
    return c.close_code() == 1000 and c.tcp_ends()


def expect_fail(c, code, timeout=3.0):
    got = c.close_code(timeout)
    ends = c.tcp_ends()
    return got == code and ends, "close=%s tcp_end=%s" % (got, ends)


def per_byte_frames(c, op, v):
    return b"".join(c.f(op if k == 0 else 0, v[k:k + 1], fin=(k == len(v) - 1)) for k in range(len(v)))


VALID_UTF8 = [b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", b"\x00\x7f", b"\xc2\x80\xdf\xbf",
              b"\xe0\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
              b"\xed\x9f\xbf\xee\x80\x80", b"\xef\xbb\xbf\xef\xbf\xbe"]
INVALID_UTF8 = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf",
                b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
                b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\xed\xa0\x80", b"\xed\xbf\xbf",
                b"\xc2", b"\xe0\xa0", b"\xf0\x90\x80", b"\xc2\x41", b"\xe1\x80\x41",
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"]
VALID_CLOSE = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
INVALID_CLOSE = (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)


# =========================================================================
# server mode: a client against loom's echo server
# =========================================================================

SCASES = []


def scase(name, ext=None):
    def d(fn):
        SCASES.append((name, fn, ext))
        return fn
    return d


def connect(port, extra=b""):
    s = socket.create_connection((HOST, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n" + extra + b"\r\n")
    c = Peer(s, True)
    head = read_head(c)
    head = head.decode("latin1")
    c.status = int(head.split(" ")[1])
    c.head = head
    c.ext = None
    want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
    for line in head.split("\r\n")[1:]:
        k, v = line.split(":", 1)
        if k.strip().lower() == "sec-websocket-extensions":
            c.ext = v.strip()
        if k.strip().lower() == "sec-websocket-accept" and v.strip() != want:
            raise ValueError("wrong Sec-WebSocket-Accept")
    return c


def server_cases(maxmsg):
    # --- 1: framing
    for op in (1, 2):
        for n in (0, 125, 126, 127, 128, 65535, 65536):
            def mk(op=op, n=n):
                @scase("1 op %d length %d" % (op, n))
                def _(c):
                    d = b"*" * n
                    c.send(c.f(op, d))
                    return echoed(c, op, d) and normal_close(c)
            mk()

    @scase("1 length 65536 in 997-byte writes")
    def _(c):
        d = os.urandom(65536)
        c.send(c.f(2, d), chop=997)
        return echoed(c, 2, d) and normal_close(c)

    for n, enc in ((0, 16), (5, 64), (200, 64), (65535, 64)):
        def mk(n=n, enc=enc):
            # RFC 6455 section 5.2 asks senders for the minimal length;
            # loom accepts the others (docs/WEBSOCKET.md).
            @scase("1 length %d in the %d-bit form" % (n, enc))
            def _(c):
                d = b"y" * n
                c.send(c.f(1, d, lenenc=enc))
                return echoed(c, 1, d) and normal_close(c)
        mk()

    @scase("1 64-bit length with the top bit set -> 1002")
    def _(c):
        c.send(bytes([0x82, 0xFF, 0x80]) + b"\0" * 7 + os.urandom(4))
        return expect_fail(c, 1002)

    @scase("1 two messages, 1-byte writes")
    def _(c):
        c.send(c.f(1, b"hello") + c.f(2, b"\x00\x01"), chop=1)
        return echoed(c, 1, b"hello") and echoed(c, 2, b"\x00\x01") and normal_close(c)

    # --- 2: pings and pongs
    for n in (0, 1, 125):
        def mk(n=n):
            @scase("2 ping %d -> pong" % n)
            def _(c):
                d = os.urandom(n)
                c.send(c.f(9, d))
                return c.message() == (0x8A, d) and normal_close(c)
        mk()

    @scase("2 ping 126 -> 1002")
    def _(c):
        c.send(c.f(9, b"p" * 126))
        return expect_fail(c, 1002)

    @scase("2 ping 125 in 1-byte writes")
    def _(c):
        d = os.urandom(125)
        c.send(c.f(9, d), chop=1)
        return c.message() == (0x8A, d) and normal_close(c)

    @scase("2 unsolicited pongs are ignored")
    def _(c):
        c.send(c.f(10) + c.f(10, b"unsolicited") + c.f(1, b"after"))
        return echoed(c, 1, b"after") and normal_close(c)

    @scase("2 10 pings in a row -> 10 pongs in order")
    def _(c):
        c.send(b"".join(c.f(9, b"ping%d" % i) for i in range(10)))
        got = [c.message() for _ in range(10)]
        return got == [(0x8A, b"ping%d" % i) for i in range(10)] and normal_close(c)

    # --- 3: reserved bits (no extension for these connections)
    for rsv, op in ((1, 1), (2, 1), (3, 1), (4, 2), (5, 9), (6, 10), (7, 8), (4, 1)):
        def mk(rsv=rsv, op=op):
            @scase("3 RSV %d on opcode %d after an echo -> 1002" % (rsv, op))
            def _(c):
                c.send(c.f(1, b"hello") + c.f(op, cp(1000) if op == 8 else b"x", rsv=rsv) + c.f(9))
                return echoed(c, 1, b"hello") and expect_fail(c, 1002)
        mk()

    # --- 4: opcodes
    for op in (3, 4, 5, 6, 7, 11, 12, 13, 14, 15):
        def mk(op=op):
            @scase("4 opcode %d after an echo -> 1002" % op)
            def _(c):
                c.send(c.f(1, b"hello") + c.f(op, b"reserved") + c.f(9))
                return echoed(c, 1, b"hello") and expect_fail(c, 1002)
        mk()

    # --- 5: fragmentation
    @scase("5 fragmented ping -> 1002")
    def _(c):
        c.send(c.f(9, b"frag", fin=False) + c.f(0, b"ment"))
        return expect_fail(c, 1002)

    @scase("5 fragmented pong -> 1002")
    def _(c):
        c.send(c.f(10, b"frag", fin=False) + c.f(0, b"ment"))
        return expect_fail(c, 1002)

    @scase("5 text in two fragments, sent apart")
    def _(c):
        c.send(c.f(1, b"frag", fin=False))
        time.sleep(0.05)
        c.send(c.f(0, b"ment"))
        return echoed(c, 1, b"fragment") and normal_close(c)

    @scase("5 ping between fragments, 1-byte writes")
    def _(c):
        c.send(c.f(1, b"frag", fin=False) + c.f(9, b"pong me") + c.f(0, b"ment"), chop=1)
        return c.message() == (0x8A, b"pong me") and echoed(c, 1, b"fragment") and normal_close(c)

    @scase("5 continuation with nothing to continue -> 1002")
    def _(c):
        c.send(c.f(0, b"cont", fin=False) + c.f(1, b"hello"))
        return expect_fail(c, 1002)

    @scase("5 continuation after a whole message -> 1002")
    def _(c):
        c.send(c.f(1, b"hello") + c.f(0, b"cont"))
        return echoed(c, 1, b"hello") and expect_fail(c, 1002)

    @scase("5 a new text frame inside a fragmented one -> 1002")
    def _(c):
        c.send(c.f(1, b"frag1", fin=False) + c.f(0, b"frag2") + c.f(1, b"frag3", fin=False) +
               c.f(1, b"frag4"))
        return echoed(c, 1, b"frag1frag2") and expect_fail(c, 1002)

    @scase("5 text in 1-byte frames")
    def _(c):
        s = b"Hello, 1-byte fragments!"
        c.send(per_byte_frames(c, 1, s))
        return echoed(c, 1, s) and normal_close(c)

    @scase("5 empty fragments with pings between")
    def _(c):
        c.send(c.f(1, b"", fin=False) + c.f(9, b"a") + c.f(0, b"", fin=False) + c.f(9, b"b") +
               c.f(0, b""))
        got = [c.message() for _ in range(3)]
        return got == [(0x8A, b"a"), (0x8A, b"b"), (0x81, b"")] and normal_close(c)

    @scase("5 close inside a fragmented message")
    def _(c):
        c.send(c.f(1, b"frag", fin=False) + c.f(8, cp(1000)))
        return c.close_code() == 1000 and c.tcp_ends()

    # --- 6: UTF-8
    for i, v in enumerate(VALID_UTF8):
        def mk(i=i, v=v):
            @scase("6 valid UTF-8 #%d, whole and in 1-byte frames" % i)
            def _(c):
                c.send(c.f(1, v) + per_byte_frames(c, 1, v))
                return echoed(c, 1, v) and echoed(c, 1, v) and normal_close(c)
        mk()
    for i, v in enumerate(INVALID_UTF8):
        def mk(i=i, v=v):
            @scase("6 invalid UTF-8 #%d (%s) -> 1007" % (i, v[:6].hex()))
            def _(c):
                c.send(c.f(1, v))
                return expect_fail(c, 1007)

            @scase("6 invalid UTF-8 #%d in 1-byte frames -> 1007" % i)
            def _(c):
                c.send(per_byte_frames(c, 1, v))
                return expect_fail(c, 1007)
        mk()

    @scase("6 every split of a multi-byte text over two frames")
    def _(c):
        v = "\u03ba\u1f79\u03c3\u03bc\u03b5 \U0001F600 \u20ac".encode()
        for k in range(1, len(v)):
            c.send(c.f(1, v[:k], fin=False) + c.f(0, v[k:]))
            if not echoed(c, 1, v):
                return False
        return normal_close(c)

    # Fail fast: the close must come at the first invalid byte, not at the
    # end of the message (Autobahn 6.4.x): the rest is never sent.
    @scase("6 fail fast: invalid second fragment, third withheld -> 1007")
    def _(c):
        c.send(c.f(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", fin=False))
        c.send(c.f(0, b"\xf4\x90\x80\x80", fin=False))
        return expect_fail(c, 1007, 1.0)

    @scase("6 fail fast: invalid bytes inside one frame, rest withheld -> 1007")
    def _(c):
        p = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited"
        w = c.f(1, p)
        hl = len(w) - len(p)
        c.send(w[:hl + 11])
        time.sleep(0.05)
        c.send(w[hl + 11:hl + 13])  # F4 90: no valid text continues this
        return expect_fail(c, 1007, 1.0)

    # --- 7: close
    @scase("7 close without payload -> close without payload")
    def _(c):
        c.send(c.f(8))
        got = c.close_code()
        return got == 1005 and c.tcp_ends(), "close=%s" % got

    @scase("7 ping and text after the close are ignored")
    def _(c):
        c.send(c.f(8, cp(1000)) + c.f(9, b"p") + c.f(1, b"x"))
        got = []
        try:
            while True:
                got.append(c.frame(2)[0])
        except (Closed, TimeoutError) as e:
            end = isinstance(e, Closed)
        return got == [0x88] and end, "frames=%s" % got

    @scase("7 a large message, then close, then ping")
    def _(c):
        d = b"B" * min(262144, maxmsg)
        c.send(c.f(1, d) + c.f(8, cp(1000)) + c.f(9, b"p"))
        return echoed(c, 1, d) and c.close_code() == 1000 and c.tcp_ends()

    @scase("7 close with a 1-byte payload -> 1002")
    def _(c):
        c.send(c.f(8, b"\x03"))
        return expect_fail(c, 1002)

    @scase("7 close with a 123-byte reason")
    def _(c):
        c.send(c.f(8, cp(1000, b"r" * 123)))
        return c.close_code() == 1000 and c.tcp_ends()

    @scase("7 close with 126 bytes of payload -> 1002")
    def _(c):
        c.send(c.f(8, cp(1000, b"r" * 124)))
        return expect_fail(c, 1002)

    @scase("7 close reason not UTF-8 -> 1007")
    def _(c):
        c.send(c.f(8, cp(1000, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")))
        return expect_fail(c, 1007)

    @scase("7 close reason ends inside a sequence -> 1007")
    def _(c):
        c.send(c.f(8, cp(1000, b"ok\xe2\x82")))
        return expect_fail(c, 1007)

    for code in VALID_CLOSE:
        def mk(code=code):
            @scase("7 close %d answered with the same code" % code)
            def _(c):
                c.send(c.f(8, cp(code, b"reason")))
                got = c.close_code()
                return got == code and c.tcp_ends(), "close=%s" % got
        mk()
    for code in INVALID_CLOSE:
        def mk(code=code):
            @scase("7 invalid close code %d -> 1002" % code)
            def _(c):
                c.send(c.f(8, cp(code)))
                return expect_fail(c, 1002)
        mk()

    @scase("7 close 4000 in 1-byte writes")
    def _(c):
        c.send(c.f(8, cp(4000, b"bye")), chop=1)
        return c.close_code() == 4000 and c.tcp_ends()

    # --- 9: limits
    @scase("9 text at the limit, whole")
    def _(c):
        d = b"*" * maxmsg
        c.send(c.f(1, d))
        return echoed(c, 1, d, 10) and normal_close(c)

    @scase("9 binary at the limit in 4096-byte frames, 65536-byte writes")
    def _(c):
        d = os.urandom(maxmsg)
        w = b"".join(c.f(2 if i == 0 else 0, d[i:i + 4096], fin=(i + 4096 >= maxmsg))
                     for i in range(0, maxmsg, 4096))
        c.send(w, chop=65536)
        return echoed(c, 2, d, 10) and normal_close(c)

    @scase("9 frame of limit + 1 (header alone) -> 1009")
    def _(c):
        c.send(bytes([0x82, 0xFF]) + struct.pack(">Q", maxmsg + 1) + os.urandom(4))
        return expect_fail(c, 1009)

    @scase("9 fragmented message over the limit -> 1009")
    def _(c):
        h = maxmsg // 2
        c.send(c.f(2, b"a" * h, fin=False) + c.f(0, b"a" * h, fin=False) + c.f(0, b"x"))
        return expect_fail(c, 1009)

    @scase("9 300 messages, each echoed before the next")
    def _(c):
        for i in range(300):
            c.send(c.f(1, b"m%d" % i))
            if not echoed(c, 1, b"m%d" % i):
                return False
        return normal_close(c)

    # --- 10: masking
    @scase("10 unmasked text -> 1002")
    def _(c):
        c.send(c.f(1, b"hi", mask=False))
        return expect_fail(c, 1002)

    @scase("10 unmasked close -> 1002")
    def _(c):
        c.send(c.f(8, cp(1000), mask=False))
        return expect_fail(c, 1002)

    # --- 12/13: permessage-deflate
    def zparams(ext):
        d = {}
        for p in ext.split(";")[1:]:
            p = p.strip()
            k, _, v = p.partition("=")
            d[k.strip()] = v.strip().strip('"') if v else True
        return d

    offers = [(b"permessage-deflate", {}),
              (b"permessage-deflate; client_max_window_bits", {}),
              (b"permessage-deflate; server_no_context_takeover", {"snct": 1}),
              (b"permessage-deflate; client_no_context_takeover", {}),
              (b"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
               {"snct": 1}),
              (b'permessage-deflate; server_max_window_bits="10"', {"smwb": 10}),
              (b"permessage-deflate; server_max_window_bits=7, permessage-deflate; "
               b"server_max_window_bits=9", {"smwb": 9}),
              (b"x-unknown, permessage-deflate; client_max_window_bits=12", {"cmwb": 12})]
    offers += [(b"permessage-deflate; server_max_window_bits=%d; client_max_window_bits" % b,
                {"smwb": b}) for b in range(8, 16)]
    offers += [(b"permessage-deflate; client_max_window_bits=%d" % b, {"cmwb": b})
               for b in range(8, 16)]
    # Autobahn 13.5: no context takeover and window 8 both ways.
    offers += [(b"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8; "
                b"server_no_context_takeover; client_no_context_takeover",
                {"smwb": 8, "snct": 1, "cmwb": 8})]
    texts = [b"", b"Hello", b"Hello" * 1000, b"\xff" + os.urandom(2999),
             b'{"chat":1234,"user":"hello frame"},' * 800]
    for off, exp in offers:
        def mk(off=off, exp=exp):
            @scase("12 permessage-deflate offer %r: echoes" % off.decode(), ext=off)
            def _(c):
                if c.ext is None:
                    return False, "declined"
                pr = zparams(c.ext)
                if "smwb" in exp and int(pr.get("server_max_window_bits", 15)) > exp["smwb"]:
                    return False, c.ext
                if exp.get("snct") and "server_no_context_takeover" not in pr:
                    return False, c.ext
                if "client_max_window_bits" in pr and b"client_max_window_bits" not in off:
                    return False, c.ext
                cmwb = pr.get("client_max_window_bits")
                cw = int(cmwb) if isinstance(cmwb, str) else 15
                # The server's messages are inflated with exactly the window
                # it agreed to (a larger distance fails here).
                c.zin = (int(pr.get("server_max_window_bits", 15)),
                         "server_no_context_takeover" not in pr)
                cctx = "client_no_context_takeover" not in pr
                comp = None
                for rnd in range(2):
                    for t in texts:
                        op = 2 if t[:1] not in (b"", b"H", b"{") else 1
                        for fs in (0, 7, 1000) if len(t) <= 5000 else (0, 4096):
                            if comp is None or not cctx:
                                comp = zlib.compressobj(6, zlib.DEFLATED, -max(cw, 9))
                            pieces = [t[i:i + fs] for i in range(0, len(t), fs)] if fs else [t]
                            pieces = pieces or [b""]
                            w = b""
                            for i, pc in enumerate(pieces):
                                last = i == len(pieces) - 1
                                z = comp.compress(pc) + comp.flush(zlib.Z_SYNC_FLUSH)
                                w += c.f(op if i == 0 else 0, z[:-4] if last else z, fin=last,
                                         rsv=4 if i == 0 else 0)
                            c.send(w)
                            if not echoed(c, op, t, 10):
                                return False, "echo of %d bytes in %d-byte pieces" % (len(t), fs)
                c.send(c.f(1, b"plain"))  # an uncompressed message still works
                return echoed(c, 1, b"plain") and normal_close(c), c.ext
        mk()
    @scase("12 compressed messages cut into 1-, 3-, 256- and 1000-byte frames",
           ext=b"permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    def _(c):
        c.zin = (15, False)
        for fs in (1, 3, 256, 1000):
            for msg in (b"Hello " * 20000, b"\xff" + os.urandom(20000), b"abc"):
                op = 2 if msg[:1] == b"\xff" else 1
                c.send(split_z(op, msg, fs, True))
                if not echoed(c, op, msg, 10):
                    return False, "%d bytes in %d-byte frames" % (len(msg), fs)
        return normal_close(c)

    for off in (b"permessage-deflate; server_max_window_bits=7",
                b"permessage-deflate; server_max_window_bits=16",
                b"permessage-deflate; server_max_window_bits",
                b"permessage-deflate; server_max_window_bits=08",
                b"permessage-deflate; client_max_window_bits=7",
                b"permessage-deflate; foo=1",
                b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
                b"permessage-deflate; server_no_context_takeover=1"):
        def mk(off=off):
            # RFC 7692 section 5: the server declines such an offer.
            @scase("13 bad offer %r declined" % off.decode(), ext=off)
            def _(c):
                return c.ext is None and normal_close(c), "ext=%s" % c.ext
        mk()
    PMD = b"permessage-deflate"

    @scase("13 RSV1 on a continuation -> 1002", ext=PMD)
    def _(c):
        c.send(c.f(1, b"\xf2\x48", fin=False, rsv=4) + c.f(0, b"\xcd\xc9\xc9\x07\x00", rsv=4))
        return expect_fail(c, 1002)

    @scase("13 RSV1 on a ping -> 1002", ext=PMD)
    def _(c):
        c.send(c.f(9, b"", rsv=4))
        return expect_fail(c, 1002)

    @scase("13 RSV1 without the extension -> 1002")
    def _(c):
        c.send(c.f(1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", rsv=4))
        return expect_fail(c, 1002)

    @scase("13 compressed text not UTF-8 -> 1007", ext=PMD)
    def _(c):
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        w = z.compress(b"ok\xed\xa0\x80") + z.flush(zlib.Z_SYNC_FLUSH)
        c.send(c.f(1, w[:-4], rsv=4))
        return expect_fail(c, 1007)

    @scase("13 RFC 7692 7.2.3.3: a block with BFINAL", ext=PMD)
    def _(c):
        c.send(c.f(1, bytes.fromhex("f348cdc9c9070000"), rsv=4))
        c.zin = (15, True)
        return echoed(c, 1, b"Hello") and normal_close(c)

    @scase("13 all data in the first frame, an empty last one", ext=PMD)
    def _(c):
        c.send(c.f(1, bytes.fromhex("f248cdc9c90700"), fin=False, rsv=4) + c.f(0, b""))
        c.zin = (15, True)
        return echoed(c, 1, b"Hello") and normal_close(c)

    @scase("13 decompression bomb -> 1009", ext=PMD)
    def _(c):
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        w = z.compress(b"\0" * (maxmsg * 8)) + z.flush(zlib.Z_SYNC_FLUSH)
        c.send(c.f(2, w[:-4], rsv=4))
        return expect_fail(c, 1009)

    @scase("13 corrupt compressed data -> 1007", ext=PMD)
    def _(c):
        c.send(c.f(2, b"\xff\xff\xff\xff", rsv=4))
        return expect_fail(c, 1007)


def handshake_cases(port):
    key = b"dGhlIHNhbXBsZSBub25jZQ=="

    def req(method=b"GET", ver=b"HTTP/1.1", upgrade=b"websocket", conn=b"Upgrade", k=key,
            version=b"13", extra=b""):
        r = method + b" /ws " + ver + b"\r\nHost: 127.0.0.1\r\n"
        for name, v in ((b"Upgrade", upgrade), (b"Connection", conn), (b"Sec-WebSocket-Key", k),
                        (b"Sec-WebSocket-Version", version)):
            if v is not None:
                r += name + b": " + v + b"\r\n"
        if method == b"POST":
            r += b"Content-Length: 0\r\n"
        return r + extra + b"\r\n"

    hs = [("accepted", req(), 101),
          ("Connection as a list", req(conn=b"keep-alive, Upgrade"), 101),
          ("Connection on two lines", req(conn=b"keep-alive\r\nConnection: Upgrade"), 101),
          # RFC 9110 section 5.3: the lines of a list field are one list.
          ("Upgrade on two lines", req(upgrade=b"foo\r\nUpgrade: websocket"), 101),
          ("tokens in other cases", req(conn=b"UPGRADE", upgrade=b"WebSocket"), 101),
          ("no key", req(k=None), 400),
          ("key of 15 bytes", req(k=base64.b64encode(b"x" * 15)), 400),
          ("key of 17 bytes", req(k=base64.b64encode(b"x" * 17)), 400),
          ("key not base64", req(k=b"!!!!!!!!!!!!!!!!!!!!!!=="), 400),
          ("two keys", req(extra=b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"), 400),
          ("version 8", req(version=b"8"), 426),
          ("no version", req(version=None), 426),
          ("POST", req(method=b"POST"), 400),
          ("HTTP/1.0", req(ver=b"HTTP/1.0"), 400),
          ("no Upgrade", req(upgrade=None), 426),
          ("Upgrade: h2c", req(upgrade=b"h2c"), 426),
          ("no Connection", req(conn=None), 400),
          ("Connection: keep-alive", req(conn=b"keep-alive"), 400)]
    for name, r, want in hs:
        s = socket.create_connection((HOST, port), timeout=5)
        s.sendall(r)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = s.recv(4096)
                if not d:
                    break
                buf += d
        except socket.timeout:
            pass
        s.close()
        head = buf.split(b"\r\n\r\n")[0].decode("latin1")
        try:
            st = int(head.split(" ")[1])
        except (IndexError, ValueError):
            st = None
        ok = st == want
        low = head.lower()
        if ok and st == 426:
            # RFC 6455 section 4.2.2 and RFC 9110 sections 15.5.22, 7.8
            ok = ("\r\nsec-websocket-version: 13" in low and "\r\nupgrade: websocket" in low and
                  "\r\nconnection: upgrade" in low)
        if ok and st == 101:
            ok = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head
        report("handshake: " + name, ok, "status=%s" % st)


def run_server(port, maxmsg):
    server_cases(maxmsg)
    for name, fn, ext in SCASES:
        c = None
        try:
            c = connect(port, b"Sec-WebSocket-Extensions: " + ext + b"\r\n" if ext else b"")
            if c.status != 101:
                report(name, False, "status %d" % c.status)
                continue
            r = fn(c)
            det = ""
            if isinstance(r, tuple):
                r, det = r
            report(name, r, det)
        except Exception as e:  # a broken expectation, not a crash of the script
            report(name, False, "exception %r" % (e,))
        finally:
            if c:
                c.s.close()
    handshake_cases(port)


# =========================================================================
# client mode: the server for loom's client
# =========================================================================

CCASES = []


def ccase(name, head=None, refused=False):
    """head(accept) -> the answer's head (default: a plain 101); refused:
    loom's client must fail the handshake."""
    def d(fn):
        CCASES.append((name, fn, head, refused))
        return fn
    return d


def ok101(acc, extra=b""):
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + acc + b"\r\n" + extra + b"\r\n")


def collect(p, timeout=2.0):
    out = []
    try:
        while True:
            b0, pl, m = p.frame(timeout)
            if not m:
                out.append("unmasked")
            out.append((b0, pl))
            if b0 & 0xF == 8:
                break
    except (TimeoutError, Closed) as e:
        out.append(type(e).__name__)
    return out


def code_of(frames):
    for f in frames:
        if isinstance(f, tuple) and f[0] == 0x88:
            return struct.unpack(">H", f[1][:2])[0] if len(f[1]) >= 2 else 1005
    return None


def cfail(p, code):
    fr = collect(p)
    got = code_of(fr)
    return got == code and "unmasked" not in fr, "close=%s" % got


def close_ok(p, code=1000):
    p.send(p.f(8, cp(code)))
    return code_of(collect(p)) == code


def client_cases():
    def bad(name, data, code):
        @ccase(name)
        def _(p):
            p.send(data)
            return cfail(p, code)

    S = lambda op, d=b"", **kw: frame(op, d, mask=False, **kw)  # noqa: E731
    for op in (1, 2):
        for n in (0, 125, 126, 65535, 65536, 1 << 20):
            def mk(op=op, n=n):
                @ccase("1 op %d length %d echoed, masked" % (op, n))
                def _(p):
                    d = b"x" * n
                    p.send(S(op, d))
                    return echoed(p, op, d) and close_ok(p)
            mk()

    @ccase("1 a frame in 1-byte writes")
    def _(p):
        p.send(S(1, b"chopped" * 40), chop=1)
        return echoed(p, 1, b"chopped" * 40) and close_ok(p)

    @ccase("2 ping 125 -> masked pong")
    def _(p):
        d = os.urandom(125)
        p.send(S(9, d))
        return p.message() == (0x8A, d) and close_ok(p)

    @ccase("2 10 pings -> 10 pongs")
    def _(p):
        p.send(b"".join(S(9, b"%d" % i) for i in range(10)))
        return [p.message() for _ in range(10)] == [(0x8A, b"%d" % i) for i in range(10)] and close_ok(p)

    bad("2 ping 126 -> 1002", S(9, b"p" * 126), 1002)
    bad("2 fragmented ping -> 1002", S(9, b"a", fin=False) + S(0, b"b"), 1002)
    for rsv in range(1, 8):
        bad("3 RSV %d -> 1002" % rsv, S(1, b"x", rsv=rsv), 1002)
    for op in (3, 7, 11, 15):
        bad("4 opcode %d -> 1002" % op, S(op, b"x"), 1002)
    bad("5 continuation with nothing to continue -> 1002", S(0, b"x"), 1002)
    bad("5 text inside a fragmented text -> 1002", S(1, b"a", fin=False) + S(1, b"b"), 1002)

    @ccase("5 text in 1-byte frames, a ping between")
    def _(p):
        s = b"fragmented!"
        w = b"".join(S(1 if i == 0 else 0, s[i:i + 1], fin=(i == len(s) - 1)) +
                     (S(9, b"pp") if i == 3 else b"") for i in range(len(s)))
        p.send(w)
        return p.message() == (0x8A, b"pp") and echoed(p, 1, s) and close_ok(p)

    bad("6 invalid UTF-8 -> 1007", S(1, b"ok\xed\xa0\x80"), 1007)
    bad("6 invalid UTF-8 across frames -> 1007", S(1, b"\xf4", fin=False) + S(0, b"\x90\x80\x80"), 1007)
    bad("6 text ends inside a sequence -> 1007", S(1, b"ok\xe2\x82"), 1007)
    bad("6 fail fast: invalid fragment, rest withheld -> 1007",
        S(1, b"\xce\xba", fin=False) + S(0, b"\xf4\x90", fin=False), 1007)
    for code in (1000, 1001, 1003, 1011, 3000, 4999):
        def mk(code=code):
            @ccase("7 close %d answered" % code)
            def _(p):
                p.send(S(8, cp(code, b"bye")))
                return code_of(collect(p)) == code
        mk()

    @ccase("7 close without payload answered without code")
    def _(p):
        p.send(S(8))
        return code_of(collect(p)) == 1005

    @ccase("7 data after the close is ignored")
    def _(p):
        p.send(S(8, cp(1000)) + S(1, b"late") + S(9, b"late"))
        fr = collect(p)
        return fr[:1] == [(0x88, cp(1000))], "%s" % fr[:2]

    for code in (0, 999, 1004, 1005, 1006, 1015, 2999, 5000):
        bad("7 invalid close code %d -> 1002" % code, S(8, cp(code)), 1002)
    bad("7 close with a 1-byte payload -> 1002", S(8, b"\x03"), 1002)
    bad("7 close reason not UTF-8 -> 1007", S(8, cp(1000, b"\xff")), 1007)
    bad("9 length with the top bit set -> 1002", b"\x82\x7f\x80" + b"\0" * 7, 1002)
    bad("10 masked text from the server -> 1002", frame(1, b"hi", mask=True), 1002)
    bad("10 masked close from the server -> 1002", frame(8, cp(1000), mask=True), 1002)
    bad("13 RSV1 without the extension -> 1002", S(1, bytes.fromhex("f248cdc9c90700"), rsv=4), 1002)

    def refuse(name, head):
        @ccase(name, head=head, refused=True)
        def _(p):
            fr = collect(p)
            return fr == ["Closed"], "%s" % fr[:2]

    H = b"HTTP/1.1 101 Switching Protocols\r\n"
    refuse("handshake: status 200", lambda a: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    refuse("handshake: no Connection", lambda a: H + b"Upgrade: websocket\r\nSec-WebSocket-Accept: " + a + b"\r\n\r\n")
    refuse("handshake: no Sec-WebSocket-Accept", lambda a: H + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    refuse("handshake: wrong Sec-WebSocket-Accept",
           lambda a: H + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
           base64.b64encode(os.urandom(20)) + b"\r\n\r\n")
    refuse("handshake: a subprotocol not offered",
           lambda a: ok101(a, b"Sec-WebSocket-Protocol: chat\r\n"))
    for ext in (b"client_max_window_bits=7", b"client_max_window_bits=16", b"server_max_window_bits",
                b"server_max_window_bits=16", b"foo", b"server_no_context_takeover; server_no_context_takeover",
                b"client_no_context_takeover=1"):
        def mk(ext=ext):
            refuse("handshake: permessage-deflate; %s" % ext.decode(),
                   lambda a: ok101(a, b"Sec-WebSocket-Extensions: permessage-deflate; " + ext + b"\r\n"))
        mk()
    refuse("handshake: permessage-deflate twice",
           lambda a: ok101(a, b"Sec-WebSocket-Extensions: permessage-deflate, permessage-deflate\r\n"))
    refuse("handshake: an extension not offered", lambda a: ok101(a, b"Sec-WebSocket-Extensions: x-foo\r\n"))

    @ccase("handshake: Upgrade and Connection as lists over several lines",
           head=lambda a: H + b"Upgrade: h2c\r\nUpgrade: WebSocket\r\nConnection: keep-alive\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + a + b"\r\n\r\n")
    def _(p):
        p.send(S(1, b"hi"))
        return echoed(p, 1, b"hi") and close_ok(p)

    @ccase("handshake: frames right behind the 101", head=lambda a: ok101(a) + frame(1, b"early", mask=False))
    def _(p):
        return echoed(p, 1, b"early") and close_ok(p)

    # permessage-deflate as the server answers it (loom's client offers
    # "permessage-deflate; client_max_window_bits").
    def zcase(name, ext, sw=15, cw=15, snct=False, cnct=False):
        @ccase("12 " + name, head=lambda a: ok101(a, b"Sec-WebSocket-Extensions: " + ext + b"\r\n"))
        def _(p):
            p.zin = (cw, not cnct)  # what loom's client compresses with
            comp = None
            for rnd in range(2):
                for msg in (b"Hello", b"Hello" * 2000, b"\xff" + os.urandom(4999), b"abc" * 30000):
                    op = 1 if msg[:1] in (b"H", b"a") else 2
                    if comp is None or snct:
                        comp = zlib.compressobj(6, zlib.DEFLATED, -max(sw, 9))
                    z = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
                    p.send(S(op, z[:-4], rsv=4))
                    if not echoed(p, op, msg):
                        return False, "echo of %d bytes" % len(msg)
            return close_ok(p)

    zcase("permessage-deflate", b"permessage-deflate")
    for b in range(8, 16):
        zcase("client_max_window_bits=%d" % b, b"permessage-deflate; client_max_window_bits=%d" % b, cw=b)
        zcase("server_max_window_bits=%d" % b, b"permessage-deflate; server_max_window_bits=%d" % b, sw=b)
    zcase("no context takeover both ways, windows 9 and 8",
          b"permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          b"server_max_window_bits=9; client_max_window_bits=8", sw=9, cw=8, snct=True, cnct=True)
    zcase("a quoted value", b'permessage-deflate; client_max_window_bits="10"', cw=10)

    PMD = lambda a: ok101(a, b"Sec-WebSocket-Extensions: permessage-deflate\r\n")  # noqa: E731

    @ccase("12 compressed messages cut into 1-, 3- and 256-byte frames", head=PMD)
    def _(p):
        p.zin = (15, True)
        for fs in (1, 3, 256):
            for msg in (b"Hello " * 20000, b"\xff" + os.urandom(20000)):
                op = 2 if msg[:1] == b"\xff" else 1
                p.send(split_z(op, msg, fs, False))
                if not echoed(p, op, msg):
                    return False, "%d bytes in %d-byte frames" % (len(msg), fs)
        return close_ok(p)

    @ccase("13 RSV1 on a ping -> 1002", head=PMD)
    def _(p):
        p.send(S(9, b"", rsv=4))
        return cfail(p, 1002)

    @ccase("13 RSV1 on a continuation -> 1002", head=PMD)
    def _(p):
        p.send(S(1, b"\xf2\x48", fin=False, rsv=4) + S(0, b"\xcd\xc9\xc9\x07\x00", rsv=4))
        return cfail(p, 1002)

    @ccase("13 compressed text not UTF-8 -> 1007", head=PMD)
    def _(p):
        z = zlib.compressobj(6, zlib.DEFLATED, -15)
        w = z.compress(b"a\xff") + z.flush(zlib.Z_SYNC_FLUSH)
        p.send(S(1, w[:-4], rsv=4))
        return cfail(p, 1007)

    @ccase("13 corrupt compressed data -> 1007", head=PMD)
    def _(p):
        p.send(S(2, b"\xff\xff\xff", rsv=4))
        return cfail(p, 1007)


def run_client():
    client_cases()
    ls = socket.socket()
    ls.bind((HOST, 0))
    ls.listen(8)
    ls.settimeout(10)
    refused = sum(1 for c in CCASES if c[3])
    print("%d %d %d" % (ls.getsockname()[1], len(CCASES), refused), flush=True)
    for name, fn, head, _ in CCASES:
        try:
            s, _ = ls.accept()
        except socket.timeout:
            report(name, False, "loom's client did not connect")
            break
        p = Peer(s, False)
        try:
            req = read_head(p)
            key = [ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n")
                   if ln.lower().startswith(b"sec-websocket-key:")][0]
            acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
            s.sendall(head(acc) if head else ok101(acc))
            r = fn(p)
            det = ""
            if isinstance(r, tuple):
                r, det = r
            report(name, r, det)
        except Exception as e:
            report(name, False, "exception %r" % (e,))
        # loom's client ends the connection (it waits for nothing else).
        try:
            s.settimeout(3)
            while s.recv(65536):
                pass
        except OSError:
            pass
        s.close()


def main():
    if sys.argv[1] == "server":
        run_server(int(sys.argv[2]), int(sys.argv[3]))
    else:
        run_client()
    failed = RESULTS.count(False)
    print("%d passed, %d failed" % (len(RESULTS) - failed, failed), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
