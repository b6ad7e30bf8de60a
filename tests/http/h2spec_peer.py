"""tests/http/h2spec_peer.py - frame-level HTTP/2 conformance cases for
test_h2_spec, modelled on h2spec's groups (RFC 9113 sections 3.5 to 8.2,
RFC 7541 for HPACK, and generic well-formed traffic). h2spec itself is not
packaged for Debian or npm; these cases are written here from the RFCs.

Each case opens its own connection (preface, SETTINGS, ACK of the server's
SETTINGS), sends raw frames and checks what comes back:
  conn CODES      GOAWAY with one of CODES, then the connection closes;
  stream SID CODES RST_STREAM on SID with one of CODES (or a GOAWAY with
                  one of them: a connection error is allowed where a stream
                  error is required), and when it is an RST the connection
                  still answers a PING;
  ping DATA       a PING ACK echoing DATA, nothing fatal before it;
  headers SID     a response HEADERS on SID, nothing fatal before it;
  end SID         the response on SID ends (END_STREAM), nothing fatal before;
  close           the connection closes (a bad preface).
Frames on the server's side of the wire are read whole, whatever way they
arrive.

Usage: h2spec_peer.py PORT [--tls CAFILE] [--split]. --split sends what a
case writes in pieces of 1 to 7 bytes with pauses, so that frame heads,
the preface and HPACK blocks arrive cut at every place. Prints
"NAME: ok" or "NAME: FAIL (got ...)" per case, then "passed N failed M";
exits 0 when all passed.
"""
import random
import socket
import ssl
import struct
import sys
import time

from hpack import Encoder

PORT = int(sys.argv[1])
CA = sys.argv[sys.argv.index("--tls") + 1] if "--tls" in sys.argv else None
SPLIT = "--split" in sys.argv
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WU, CONT = range(10)
ES, EH, PAD, PRIO, ACK = 1, 4, 8, 0x20, 1
NO_ERROR, PROTOCOL, INTERNAL, FLOW, TIMEOUT, CLOSED, FRAME_SIZE, REFUSED = range(8)
COMPRESSION = 9
WAIT = 4.0
rng = random.Random(9113)


def fr(t, fl, sid, p=b""):
    return struct.pack(">I", len(p))[1:] + bytes([t, fl]) + struct.pack(">I", sid) + p


def hb(path="/", method="GET", extra=(), huffman=True):
    fields = [(":method", method), (":scheme", "https" if CA else "http"), (":path", path),
              (":authority", "localhost")]
    return Encoder().encode(fields + list(extra), huffman=huffman)


class Conn:
    def __init__(self, preface=PREFACE, settings=b""):
        raw = socket.create_connection(("127.0.0.1", PORT), timeout=WAIT)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if CA:
            ctx = ssl.create_default_context(cafile=CA)
            ctx.set_alpn_protocols(["h2"])
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
            assert raw.selected_alpn_protocol() == "h2", "ALPN did not pick h2"
        self.s = raw
        self.buf = b""
        self.send(preface + fr(SETTINGS, 0, 0, settings))
        if preface != PREFACE:
            return
        t0 = time.time()
        while time.time() - t0 < WAIT:
            f = self.frame(WAIT)
            if not isinstance(f, tuple):
                raise RuntimeError("no server SETTINGS")
            if f[0] == SETTINGS and not f[1] & ACK:
                self.send(fr(SETTINGS, ACK, 0))
                return
        raise RuntimeError("no server SETTINGS")

    def send(self, b):
        try:
            if not SPLIT:
                self.s.sendall(b)
                return
            head, rest = b[:1024], b[1024:]
            i = 0
            while i < len(head):
                n = rng.randint(1, 7)
                self.s.sendall(head[i:i + n])
                i += n
                time.sleep(0.0005)
            if rest:
                self.s.sendall(rest)
        except OSError:
            pass

    def frame(self, to):
        deadline = time.time() + to
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.time()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                return None
            except (OSError, ssl.SSLError):
                return "closed"
            if not d:
                return "closed"
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF,
             self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        return f

    def events(self, stop):
        """Frames as short strings until stop(ev) says so, the connection
        closes or WAIT passes."""
        ev = []
        deadline = time.time() + WAIT
        while time.time() < deadline:
            f = self.frame(deadline - time.time())
            if f is None:
                ev.append("timeout")
                break
            if f == "closed":
                ev.append("closed")
                break
            t, fl, s, p = f
            new = []
            if t == GOAWAY:
                new.append("goaway %d" % struct.unpack(">I", p[4:8])[0])
            elif t == RST:
                new.append("rst%d %d" % (s, struct.unpack(">I", p)[0]))
            elif t == HEADERS:
                new.append("headers%d" % s)
            elif t == PING and fl & ACK:
                new.append("pingack " + p.hex())
            elif t == SETTINGS and fl & ACK:
                new.append("settingsack")
            elif t == DATA:
                new.append("data%d %d" % (s, len(p)))
            if t in (HEADERS, DATA) and fl & ES:
                new.append("end%d" % s)
            for e in new:
                ev.append(e)
                if stop(e):
                    return ev
        return ev


def fatal(e):
    return e.startswith("goaway") or e.startswith("rst") or e == "closed"


def check(c, want):
    kind = want[0]
    if kind == "conn":
        ev = c.events(lambda e: False)
        gone = [e for e in ev if e.startswith("goaway")]
        ok = bool(gone) and int(gone[0].split()[1]) in want[1] and ev[-1] == "closed"
        return ok, ev
    if kind == "close":
        ev = c.events(lambda e: False)
        return ev[-1] == "closed" and not any(e.startswith("headers") for e in ev), ev
    if kind == "stream":
        sid, codes = want[1], want[2]
        rst = "rst%d " % sid if sid else "rst"  # 0: any stream
        ev = c.events(lambda e: e.startswith(rst) or e.startswith("goaway"))
        last = ev[-1]
        if last.startswith(rst) and int(last.split()[1]) in codes:
            c.send(fr(PING, 0, 0, b"stillup!"))
            more = c.events(lambda e: e.startswith("pingack") or fatal(e))
            return more[-1] == "pingack " + b"stillup!".hex(), ev + more
        if last.startswith("goaway") and int(last.split()[1]) in codes:
            return True, ev
        return False, ev
    if kind == "ping":
        key = "pingack " + want[1].hex()
        ev = c.events(lambda e: e.startswith("pingack") or fatal(e))
        return ev[-1] == key, ev
    if kind == "headers":
        key = "headers%d" % want[1]
        ev = c.events(lambda e: e == key or fatal(e))
        return ev[-1] == key, ev
    if kind == "end":  # the answer on SID ended (END_STREAM): the stream is closed
        key = "end%d" % want[1]
        ev = c.events(lambda e: e == key or fatal(e))
        return ev[-1] == key, ev
    if kind == "settingsack":
        ev = c.events(lambda e: e == "settingsack" or fatal(e))
        return ev[-1] == "settingsack", ev
    if kind == "data":  # first DATA on SID carries exactly N bytes
        key = "data%d %d" % (want[1], want[2])
        ev = c.events(lambda e: e.startswith("data%d " % want[1]) or fatal(e))
        return ev[-1] == key, ev
    raise ValueError(kind)


CASES = []


def case(name, *want, settings=b"", preface=PREFACE):
    def d(fn):
        CASES.append((name, want, settings, preface, fn))
        return fn
    return d


def both(first, then):
    """Two steps on one connection: first's expectation, then then's."""
    return ("both", first, then)


# --- 3.5 connection preface -------------------------------------------------
@case("3.5/2 bad preface", "close", preface=b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
def _(c):
    pass


# --- 4 frames -----------------------------------------------------------------
@case("4.1/1 unknown frame type", "ping", b"12345678")
def _(c):
    c.send(fr(0x20, 0, 0, b"abcd") + fr(PING, 0, 0, b"12345678"))


@case("4.1/2 unknown flags", "ping", b"12345678")
def _(c):
    c.send(fr(PING, 0x16, 0, b"12345678"))


@case("4.1/3 reserved bit", "ping", b"12345678")
def _(c):
    c.send(b"\x00\x00\x08\x06\x00\x80\x00\x00\x00" + b"12345678")


@case("4.2/1 DATA of 16384", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(DATA, ES, 1, b"x" * 16384))


@case("4.2/2 DATA over max frame size", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(DATA, ES, 1, b"x" * 16385))


@case("4.2/3 HEADERS over max frame size", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/", "GET", [("x-a", "a" * 16400)], huffman=False)))


@case("4.3/1 undecodable header block", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, b"\x80"))


@case("4.3/3 PRIORITY between CONTINUATIONs", "conn", {PROTOCOL})
def _(c):
    h = hb()
    c.send(fr(HEADERS, ES, 1, h[:3]) + fr(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10") +
           fr(CONT, EH, 1, h[3:]))


# --- 5.1 stream states ----------------------------------------------------------
@case("5.1/1 DATA on idle stream", "conn", {PROTOCOL})
def _(c):
    c.send(fr(DATA, ES, 1, b"x"))


@case("5.1/2 RST_STREAM on idle stream", "conn", {PROTOCOL})
def _(c):
    c.send(fr(RST, 0, 1, b"\0\0\0\x08"))


@case("5.1/3 WINDOW_UPDATE on idle stream", "conn", {PROTOCOL})
def _(c):
    c.send(fr(WU, 0, 1, b"\0\0\0\x01"))


@case("5.1/4 CONTINUATION on idle stream", "conn", {PROTOCOL})
def _(c):
    c.send(fr(CONT, EH, 1, hb()))


@case("5.1/5 DATA on half-closed (remote)", "stream", 1, {CLOSED})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/")) + fr(DATA, ES, 1, b"x"))


@case("5.1/6 HEADERS on half-closed (remote)", "stream", 1, {CLOSED})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/")) + fr(HEADERS, EH | ES, 1, hb("/")))


@case("5.1/7 CONTINUATION on half-closed (remote)", "stream", 1, {CLOSED, PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/")) + fr(CONT, EH, 1, hb("/")))


@case("5.1/8 DATA after RST_STREAM", "conn", {CLOSED})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(RST, 0, 1, b"\0\0\0\x08") + fr(DATA, 0, 1, b"x"))


@case("5.1/9 HEADERS after RST_STREAM", "conn", {CLOSED})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(RST, 0, 1, b"\0\0\0\x08") +
           fr(HEADERS, EH | ES, 1, hb()))


@case("5.1/9b HEADERS after an RST_STREAM cut between reads", "conn", {CLOSED})
def _(c):
    rst = fr(RST, 0, 1, b"\0\0\0\x08")
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + rst[:11])
    time.sleep(0.05)  # the RST's payload ends in the read that brings the HEADERS
    c.send(rst[11:] + fr(HEADERS, EH | ES, 1, hb()))


@case("5.1/10 CONTINUATION after RST_STREAM", "conn", {CLOSED, PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(RST, 0, 1, b"\0\0\0\x08") + fr(CONT, EH, 1, hb()))


@case("5.1/11 DATA on closed stream (END_STREAM)", *both(("end", 1), ("conn", {CLOSED})))
def _(c, step):
    if step == 0:
        c.send(fr(HEADERS, EH | ES, 1, hb("/")))
    else:
        c.send(fr(DATA, ES, 1, b"x"))


@case("5.1/12 HEADERS on closed stream (END_STREAM)", *both(("end", 1), ("conn", {CLOSED})))
def _(c, step):
    if step == 0:
        c.send(fr(HEADERS, EH | ES, 1, hb("/")))
    else:
        time.sleep(0.1)
        c.send(fr(HEADERS, EH | ES, 1, hb("/")))


@case("5.1/13 DATA after RST_STREAM among other resets", "conn", {CLOSED})
def _(c):
    b = fr(HEADERS, EH, 1, hb("/", "POST"))
    for i in range(1, 6):
        b += fr(HEADERS, EH, 1 + 2 * i, hb("/", "POST")) + fr(RST, 0, 1 + 2 * i, b"\0\0\0\x08")
    b += fr(RST, 0, 1, b"\0\0\0\x08") + fr(DATA, 0, 1, b"x")
    c.send(b)


@case("5.1.1/1 even stream id", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH | ES, 2, hb()))


@case("5.1.1/2 stream id lower than one opened", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH | ES, 5, hb()) + fr(HEADERS, EH | ES, 3, hb()))


@case("5.1.2/1 over max concurrent streams", "stream", 0, {PROTOCOL, REFUSED})
def _(c):
    c.send(b"".join(fr(HEADERS, EH, 1 + 2 * i, hb("/", "POST")) for i in range(300)))


@case("5.3.1/1 HEADERS depending on itself", "stream", 1, {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH | ES | PRIO, 1, b"\x00\x00\x00\x01\x10" + hb()))


@case("5.3.1/2 PRIORITY depending on itself", "stream", 1, {PROTOCOL})
def _(c):
    c.send(fr(PRIORITY, 0, 1, b"\x00\x00\x00\x01\x10"))


@case("5.5/2 unknown frame inside a header block", "conn", {PROTOCOL})
def _(c):
    h = hb()
    c.send(fr(HEADERS, ES, 1, h[:3]) + fr(0x20, 0, 1, b"ab") + fr(CONT, EH, 1, h[3:]))


# --- 6 frame definitions ----------------------------------------------------------
@case("6.1/1 DATA on stream 0", "conn", {PROTOCOL})
def _(c):
    c.send(fr(DATA, ES, 0, b"x"))


@case("6.1/3 DATA padding too long", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(DATA, ES | PAD, 1, b"\x06abcd"))


@case("6.2/1 HEADERS then DATA before END_HEADERS", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, ES, 1, hb()) + fr(DATA, ES, 1, b"x"))


@case("6.2/2 HEADERS on stream 0", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH | ES, 0, hb()))


@case("6.2/3 HEADERS padding too long", "conn", {PROTOCOL})
def _(c):
    h = hb()
    c.send(fr(HEADERS, EH | ES | PAD, 1, bytes([len(h) + 1]) + h))


@case("6.3/1 PRIORITY on stream 0", "conn", {PROTOCOL})
def _(c):
    c.send(fr(PRIORITY, 0, 0, b"\x00\x00\x00\x01\x10"))


@case("6.3/2 PRIORITY of length 4", "stream", 1, {FRAME_SIZE})
def _(c):
    c.send(fr(PRIORITY, 0, 1, b"\x00\x00\x00\x03"))


@case("6.4/1 RST_STREAM on stream 0", "conn", {PROTOCOL})
def _(c):
    c.send(fr(RST, 0, 0, b"\0\0\0\x08"))


@case("6.4/3 RST_STREAM of length 3", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(RST, 0, 1, b"\0\0\x08"))


@case("6.5/1 SETTINGS ACK with a payload", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(SETTINGS, ACK, 0, b"\0\x01\0\0\0\0"))


@case("6.5/2 SETTINGS on stream 1", "conn", {PROTOCOL})
def _(c):
    c.send(fr(SETTINGS, 0, 1, b""))


@case("6.5/3 SETTINGS of length 3", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x01\0"))


@case("6.5.2/1 ENABLE_PUSH of 2", "conn", {PROTOCOL})
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x02\0\0\0\x02"))


@case("6.5.2/2 INITIAL_WINDOW_SIZE over 2^31-1", "conn", {FLOW})
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x04\x80\0\0\0"))


@case("6.5.2/3 MAX_FRAME_SIZE under 16384", "conn", {PROTOCOL})
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x05\0\0\x3f\xff"))


@case("6.5.2/4 MAX_FRAME_SIZE over 2^24-1", "conn", {PROTOCOL})
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x05\x01\0\0\0"))


@case("6.5.2/5 unknown setting", "ping", b"abcdefgh")
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\xff\0\0\0\x01") + fr(PING, 0, 0, b"abcdefgh"))


@case("6.5.3/1 SETTINGS is acknowledged", "settingsack")
def _(c):
    c.send(fr(SETTINGS, 0, 0, b"\0\x03\0\0\0\x64\0\x04\0\0\x40\0"))


@case("6.7/1 PING", "ping", b"abcdefgh")
def _(c):
    c.send(fr(PING, 0, 0, b"abcdefgh"))


@case("6.7/2 PING ACK is not answered", "ping", b"zzzzzzzz")
def _(c):
    c.send(fr(PING, ACK, 0, b"abcdefgh") + fr(PING, 0, 0, b"zzzzzzzz"))


@case("6.7/3 PING on stream 1", "conn", {PROTOCOL})
def _(c):
    c.send(fr(PING, 0, 1, b"abcdefgh"))


@case("6.7/4 PING of length 6", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(PING, 0, 0, b"abcdef"))


@case("6.8/1 GOAWAY on stream 1", "conn", {PROTOCOL})
def _(c):
    c.send(fr(GOAWAY, 0, 1, b"\0\0\0\0\0\0\0\0"))


@case("6.9/1 WINDOW_UPDATE of 0 on the connection", "conn", {PROTOCOL})
def _(c):
    c.send(fr(WU, 0, 0, b"\0\0\0\0"))


@case("6.9/2 WINDOW_UPDATE of 0 on a stream", "stream", 1, {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(WU, 0, 1, b"\0\0\0\0"))


@case("6.9/3 WINDOW_UPDATE of length 3", "conn", {FRAME_SIZE})
def _(c):
    c.send(fr(WU, 0, 0, b"\0\0\x01"))


@case("6.9.1/1 INITIAL_WINDOW_SIZE 1: one byte of DATA", "data", 1, 1,
      settings=b"\0\x04\0\0\0\x01")
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb()))


@case("6.9.1/2 connection window over 2^31-1", "conn", {FLOW})
def _(c):
    c.send(fr(WU, 0, 0, b"\x7f\xff\xff\xff"))


@case("6.9.1/3 stream window over 2^31-1", "stream", 1, {FLOW})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(WU, 0, 1, b"\x7f\xff\xff\xff"))


@case("6.9.2/1 INITIAL_WINDOW_SIZE 0, then 9", *both(("settingsack",), ("data", 1, 9)),
      settings=b"\0\x04\0\0\0\x00")
def _(c, step):
    if step == 0:
        c.send(fr(HEADERS, EH | ES, 1, hb()) + fr(SETTINGS, 0, 0, b""))
    else:
        c.send(fr(SETTINGS, 0, 0, b"\0\x04\0\0\0\x09"))


@case("6.9.2/3 INITIAL_WINDOW_SIZE overflows a stream window", "stream", 1, {FLOW})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(WU, 0, 1, b"\x7f\xff\x00\x00") +
           fr(SETTINGS, 0, 0, b"\0\x04\x7f\xff\xff\xff"))


@case("6.10/1 several CONTINUATIONs", "headers", 1)
def _(c):
    h = hb()
    c.send(fr(HEADERS, ES, 1, h[:2]) + fr(CONT, 0, 1, h[2:4]) + fr(CONT, EH, 1, h[4:]))


@case("6.10/1b CONTINUATION heads arriving a byte at a time", "headers", 1)
def _(c):
    h = hb(extra=[("x-a", "b" * 30)])
    b = fr(HEADERS, ES, 1, h[:4])
    for i in range(4, len(h), 8):
        b += fr(CONT, EH if i + 8 >= len(h) else 0, 1, h[i:i + 8])
    for i in range(len(b)):  # every read sees a piece of a frame head
        c.s.sendall(b[i:i + 1])
        time.sleep(0.001)


@case("6.10/2 CONTINUATION after END_HEADERS", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(CONT, EH, 1, hb()))


@case("6.10/4 CONTINUATION on stream 0", "conn", {PROTOCOL})
def _(c):
    h = hb()
    c.send(fr(HEADERS, ES, 1, h[:3]) + fr(CONT, EH, 0, h[3:]))


@case("6.10/5 CONTINUATION on another stream", "conn", {PROTOCOL})
def _(c):
    h = hb()
    c.send(fr(HEADERS, ES, 1, h[:3]) + fr(CONT, EH, 3, h[3:]))


# --- 8 HTTP ------------------------------------------------------------------------
@case("8.1/1 second HEADERS without END_STREAM", "stream", 1, {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(DATA, 0, 1, b"x") +
           fr(HEADERS, EH, 1, Encoder().encode([("x-t", "1")])))


@case("8.4/1 PUSH_PROMISE from a client", "conn", {PROTOCOL})
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(PUSH, EH, 1, b"\0\0\0\x02" + hb()))


# --- HPACK (RFC 7541) -----------------------------------------------------------------
@case("hpack 2.3.3 index past the tables", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, b"\xff\x7f"))


@case("hpack 4.2 table size update over the setting", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, b"\x3f\xe1\x7f" + hb()))


@case("hpack 4.2 table size update after a field", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb() + b"\x20"))


@case("hpack 5.2 Huffman EOS in a string", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb() + b"\x40\x85\xff\xff\xff\xff\xff\x01a"))


@case("hpack 5.2 Huffman padding not ones", "conn", {COMPRESSION})
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb() + b"\x40\x81\x00\x01a"))


# --- generic: well-formed traffic is served ------------------------------------------
@case("generic GET", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/")))


@case("generic POST with content-length", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST", [("content-length", "3")])) + fr(DATA, ES, 1, b"abc"))


@case("generic HEAD", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH | ES, 1, hb("/", "HEAD")))


@case("generic padded DATA", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(DATA, ES | PAD, 1, b"\x03abc\0\0\0"))


@case("generic HEADERS with a priority", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH | ES | PRIO, 1, b"\x00\x00\x00\x00\x10" + hb()))


@case("generic PRIORITY on an idle stream, then HEADERS", "headers", 1)
def _(c):
    c.send(fr(PRIORITY, 0, 3, b"\x00\x00\x00\x00\x10") + fr(HEADERS, EH | ES, 1, hb()))


@case("generic PRIORITY on an open stream", "headers", 1)
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10") +
           fr(DATA, ES, 1, b"x"))


@case("generic RST_STREAM of an open stream, then GET", "headers", 3)
def _(c):
    c.send(fr(HEADERS, EH, 1, hb("/", "POST")) + fr(RST, 0, 1, b"\0\0\0\x08") +
           fr(HEADERS, EH | ES, 3, hb()))


@case("generic WINDOW_UPDATE, RST_STREAM, PRIORITY after close",
      *both(("end", 1), ("ping", b"pingping")))
def _(c, step):
    if step == 0:
        c.send(fr(HEADERS, EH | ES, 1, hb()))
    else:
        time.sleep(0.1)
        c.send(fr(WU, 0, 1, b"\0\0\x10\0") + fr(RST, 0, 1, b"\0\0\0\0") +
               fr(PRIORITY, 0, 1, b"\0\0\0\0\x10") + fr(PING, 0, 0, b"pingping"))


@case("generic 50 streams in one write", "headers", 99)
def _(c):
    c.send(b"".join(fr(HEADERS, EH | ES, 1 + 2 * i, hb()) for i in range(50)))


def run(name, want, settings, preface, fn):
    c = None
    try:
        c = Conn(preface, settings)
        if want[0] == "both":
            fn(c, 0)
            ok, ev = check(c, want[1])
            if ok:
                fn(c, 1)
                ok, ev2 = check(c, want[2])
                ev = ev + ["|"] + ev2
        else:
            fn(c)
            ok, ev = check(c, want)
    except Exception as e:  # noqa: BLE001 - reported as the case's failure
        ok, ev = False, ["exception %r" % e]
    finally:
        if c is not None:
            c.s.close()
    print("%s: %s" % (name, "ok" if ok else "FAIL (got %s)" % ",".join(ev)), flush=True)
    return ok


def main():
    only = [a for a in sys.argv[2:] if not a.startswith("--") and a != CA]
    results = [run(*c) for c in CASES if not only or c[0] in only]
    passed = sum(results)
    print("passed %d failed %d" % (passed, len(results) - passed), flush=True)
    sys.exit(0 if passed == len(results) else 1)


main()
