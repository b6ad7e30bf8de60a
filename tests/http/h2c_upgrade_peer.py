"""tests/http/h2c_upgrade_peer.py - a scripted client for test_h2c_upgrade:
an HTTP/1.1 request with "Upgrade: h2c" (raw bytes, so that it can be
wrong on purpose), then, after a 101, raw HTTP/2 frames (h2_peer.py's peer,
HPACK from python3-hpack). Usage: h2c_upgrade_peer.py PORT SCENARIO [CA].
Prints what the server did, one fact a line, for the C test to check:
"http/1.1 STATUS BODY" for an answer on HTTP/1.1, "101" then
"h2 STATUS BODY ERR" for stream 1 on HTTP/2. Exits 0 unless the scenario is
unknown.
"""
import base64
import socket
import struct
import sys
import time

from h2_peer import GOAWAY, PREFACE, RST, SETTINGS, eof, frame, goaway_code
from h2_peer import Peer as RawPeer


def b64(payload):
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


# SETTINGS_MAX_CONCURRENT_STREAMS 100, SETTINGS_INITIAL_WINDOW_SIZE 65535.
GOOD = b64(struct.pack(">HIHI", 3, 100, 4, 65535))


class Peer(RawPeer):
    """h2_peer.py's raw peer, which starts on HTTP/1.1."""

    def upgrade(self, path="/", method="GET", settings=(GOOD,), conn="Upgrade, HTTP2-Settings",
                upgrade="h2c", body=b"", extra=(), preface=False):
        """Sends the request (and the preface behind it in the same write
        if `preface`)."""
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: localhost"]
        if conn is not None:
            lines.append("Connection: " + conn)
        if upgrade is not None:
            lines.append("Upgrade: " + upgrade)
        lines += ["HTTP2-Settings: " + s for s in settings]
        if body:
            lines.append("Content-Length: %d" % len(body))
        lines += list(extra)
        out = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        if preface:
            out += PREFACE + frame(SETTINGS, 0, 0)
        self.send(out)

    def head(self):
        """Reads an HTTP/1.1 head: (status, {lowercase name: value}), or
        (None, {}) at eof. What follows it stays in self.buf."""
        while b"\r\n\r\n" not in self.buf:
            try:
                b = self.s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                b = b""
            if not b:
                return None, {}
            self.buf += b
        h, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = h.decode().split("\r\n")
        fields = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            fields[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), fields

    def body1(self, fields):
        n = int(fields.get("content-length", "0"))
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                break
            self.buf += b
        body, self.buf = self.buf[:n], self.buf[n:]
        return body.decode()

    def answer(self, wait_preface=False):
        """Reads the answer to the upgrade request and prints it. After a
        101 the preface is sent (unless it went with the request) and
        stream 1's answer read."""
        status, fields = self.head()
        if status is None:
            print("eof")
            return None
        if status != 101:
            print("http/1.1", status, self.body1(fields))
            return status
        print("101", fields.get("upgrade"), fields.get("connection"))
        if wait_preface:
            self.start()
        st, body, err = self.response(1)
        if len(body) > 100 and body == body[:1] * len(body):
            body = b"%dx%s" % (len(body), body[:1])  # a long run of one byte
        print("h2", st, body.decode(), err)
        return status


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    p = Peer(port)
    if what == "tls_preface":
        # Over TLS, a client that chose http/1.1 by ALPN and then sends the
        # HTTP/2 preface: h2c prior knowledge is for cleartext only (RFC 9113
        # section 3.3), so this is an HTTP/1.1 request with the method PRI.
        import ssl

        ctx = ssl.create_default_context(cafile=sys.argv[3])
        ctx.set_alpn_protocols(["http/1.1"])
        p.s = ctx.wrap_socket(p.s, server_hostname="localhost")
        print("alpn", p.s.selected_alpn_protocol())
        p.send(PREFACE + frame(SETTINGS, 0, 0))
        p.answer()
        return
    if what == "pipelined":
        # The preface in the same write as the request, then a second
        # stream on the same connection.
        p.upgrade("/?a=1", preface=True)
        p.answer()
        p.request(3, "/second")
        st, body, err = p.response(3)
        print("h2", st, body.decode(), err)
    elif what == "after_h1":
        # A plain HTTP/1.1 request, then the upgrade pipelined behind it
        # with the preface: the first answer, then the 101, in order.
        p.send(b"GET /first HTTP/1.1\r\nHost: localhost\r\n\r\n")
        p.upgrade("/second", preface=True)
        p.answer()
        p.answer()
    elif what == "trickle":
        # The request and the preface in pieces of 5 bytes.
        real, out = p.send, []
        p.send = out.append
        p.upgrade("/trickle", preface=True)
        p.send = real
        data = b"".join(out)
        for i in range(0, len(data), 5):
            p.send(data[i : i + 5])
            time.sleep(0.002)
        p.answer()
    elif what == "waited":
        p.upgrade("/waited")
        p.answer(wait_preface=True)
    elif what == "head":
        p.upgrade("/", method="HEAD", preface=True)
        p.answer()
    elif what == "bad_b64":
        p.upgrade(settings=("AAMAAABk!AAQ",))
        p.answer()
    elif what == "bad_len":
        p.upgrade(settings=(b64(b"\0\3\0\0\0"),))  # 5 bytes: not a whole setting
        p.answer()
    elif what == "bad_value":
        p.upgrade(settings=(b64(struct.pack(">HI", 2, 2)),))  # ENABLE_PUSH 2
        p.answer()
    elif what == "too_many":
        p.upgrade(settings=(b64(struct.pack(">HI", 3, 100) * 33),))
        p.answer()
    elif what == "two_settings":
        p.upgrade(settings=(GOOD, GOOD))
        p.answer()
    elif what == "no_settings":
        p.upgrade(settings=())
        p.answer()
    elif what == "conn_no_settings":
        p.upgrade(conn="Upgrade")
        p.answer()
    elif what == "upgrade_list":
        # h2c in a list, any case, with the fields of a keep-alive client
        # and one named by Connection (all dropped from stream 1's fields).
        p.upgrade("/fields", upgrade="foo/2, H2C", conn="keep-alive, HTTP2-Settings, upgrade, x-hop",
                  extra=["X-Hop: 1", "X-Kept: 2", "TE: trailers", "Keep-Alive: timeout=5"],
                  preface=True)
        p.answer()
    elif what == "websocket":
        p.upgrade(upgrade="websocket", conn="Upgrade",
                  settings=(), extra=["Sec-WebSocket-Version: 13",
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="])
        p.answer()
    elif what == "post":
        p.upgrade("/echo", method="POST", body=b"hello")
        p.answer()
    elif what == "close_after_101":
        # The request is kept (deferred) by the application; the client
        # goes right after the 101: it hears on_close.
        p.upgrade("/forever")
        status, _ = p.head()
        print(status)
        p.s.close()
    elif what == "no_preface":
        # The 101 and nothing after it: the header timeout ends it.
        p.ack = False  # an ACK would be a bad preface
        p.upgrade("/forever")
        status, _ = p.head()
        print(status)
        t0 = time.time()
        print(p.until(lambda f: False) or "eof", "after %s" %
              ("<2s" if time.time() - t0 < 2 else ">2s"))
    elif what == "rst_stream1":
        # Stream 1 (kept by the application) reset by the client: it hears
        # on_close, and the connection goes on with stream 3.
        p.upgrade("/forever", preface=True)
        status, _ = p.head()
        print(status)
        p.send(frame(RST, 0, 1, struct.pack(">I", 8)))
        p.request(3, "/three")
        st, body, err = p.response(3)
        print("h2", st, body.decode(), err)
    elif what == "graceful":
        # The server closes gracefully while stream 1 waits for its answer:
        # GOAWAY names stream 1, its answer still comes, then the end.
        p.upgrade("/close", preface=True)
        status, _ = p.head()
        print(status)
        f = p.until(lambda f: f[0] == GOAWAY)
        print(goaway_code(f), "last", struct.unpack(">I", f[3][:4])[0] & 0x7FFFFFFF)
        st, body, err = p.response(1)
        print("h2", st, body.decode(), err)
        print(eof(p))
    elif what == "stream":
        p.upgrade("/stream", preface=True)
        p.answer()
    elif what == "defer":
        p.upgrade("/defer", preface=True)
        p.answer()
    else:
        print("unknown scenario")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
