"""tests/http/h2_rules_peer.py - the HTTP rules of an HTTP/2 request (RFC
9113 section 8), for test_h2_rules: one connection, one stream per case,
each request well-formed or broken in one way. Raw frames, HPACK from
python3-hpack. Usage: h2_rules_peer.py PORT. Prints "CASE: status N" or
"CASE: rst N" per case, then "done"; exits 0 unless the socket failed.
"""
import socket
import struct
import sys

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST, SETTINGS, GOAWAY, WINDOW = 0, 1, 3, 4, 7, 8
END_STREAM, END_HEADERS, ACK = 1, 4, 1


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def base(path, method="GET"):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", "localhost")]


# (name, fields, end_stream on HEADERS, [DATA payloads], trailers or None, END_STREAM on trailers)
def cases():
    c = []
    ok = lambda n, f, end=True, data=(), tr=None, tr_end=True: c.append((n, f, end, list(data), tr, tr_end))
    ok("ok", base("/ok"))
    ok("upper_name", base("/bad-upper") + [("X-Foo", "1")])
    ok("space_name", base("/bad-space") + [("x foo", "1")])
    ok("colon_inside_name", base("/bad-colon") + [("x:foo", "1")])
    ok("nul_value", base("/bad-nul") + [("x-foo", b"a\x00b")])
    ok("cr_value", base("/bad-cr") + [("x-foo", b"a\rb")])
    ok("lf_value", base("/bad-lf") + [("x-foo", b"a\nb")])
    ok("del_value", base("/bad-del") + [("x-foo", b"a\x7fb")])
    ok("lead_ws_value", base("/bad-lead") + [("x-foo", " a")])
    ok("trail_ws_value", base("/bad-trail") + [("x-foo", "a\t")])
    ok("inner_ws_value", base("/ok-inner") + [("x-foo", "a \tb"), ("x-empty", "")])
    ok("obs_text_value", base("/ok-obs") + [("x-foo", b"caf\xc3\xa9")])
    ok("unknown_pseudo", base("/bad-pseudo") + [(":foo", "x")])
    ok("status_pseudo", base("/bad-status") + [(":status", "200")])
    ok("protocol_pseudo", base("/bad-protocol") + [(":protocol", "websocket")])
    ok("pseudo_after_regular", [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"),
                                ("x-a", "1"), (":path", "/bad-order")])
    ok("dup_method", base("/bad-dupm") + [(":method", "GET")])
    ok("dup_path", [(":path", "/bad-dupp")] + base("/bad-dupp"))
    ok("dup_scheme", base("/bad-dups")[:2] + base("/bad-dups")[1:])
    ok("dup_authority", base("/bad-dupa") + [(":authority", "localhost")])
    ok("no_method", base("/bad-nom")[1:])
    ok("no_scheme", [f for f in base("/bad-nos") if f[0] != ":scheme"])
    ok("no_path", [f for f in base("/x") if f[0] != ":path"])
    ok("empty_path", base(""))
    ok("relative_path", base("bad-rel"))
    ok("path_space", base("/bad path"))
    ok("options_star", base("*", "OPTIONS"))
    ok("get_star", base("*"))
    ok("bad_method", base("/bad-meth", "GE T"))
    ok("empty_method", base("/bad-emeth", ""))
    ok("bad_scheme", [(":method", "GET"), (":scheme", "1http"), (":path", "/bad-sch"),
                      (":authority", "localhost")])
    ok("other_scheme", [(":method", "GET"), (":scheme", "foo+bar"), (":path", "/ok-scheme"),
                        (":authority", "localhost")])
    ok("bad_authority", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-auth"),
                         (":authority", "a b")])
    ok("empty_authority", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-eauth"),
                           (":authority", "")])
    ok("empty_host", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-ehost"), ("host", "")])
    ok("empty_scheme", [(":method", "GET"), (":scheme", ""), (":path", "/bad-esch"),
                        (":authority", "localhost")])
    ok("no_authority_no_host", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-noauth")])
    ok("host_only", [(":method", "GET"), (":scheme", "http"), (":path", "/ok-host"), ("host", "h.example")])
    ok("dup_host", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-duph"), ("host", "a"),
                    ("host", "a")])
    ok("bad_host", [(":method", "GET"), (":scheme", "http"), (":path", "/bad-host"), ("host", "a{b")])
    # port = *DIGIT (RFC 3986 section 3.2.3): a bad port is an invalid authority.
    for i, a in enumerate(("a:b", "a:1:2", "[::1]x", "[::g]:80", "a%zz")):
        ok("bad_auth_port%d" % i, [(":method", "GET"), (":scheme", "http"), (":path", "/bad-ap%d" % i),
                                   (":authority", a)])
        ok("bad_host_port%d" % i, [(":method", "GET"), (":scheme", "http"), (":path", "/bad-hp%d" % i),
                                   ("host", a)])
    for i, a in enumerate(("[::1]:8080", "[v1.x]", "a:", "h.example:443", "a%20b")):
        ok("ok_auth%d" % i, [(":method", "GET"), (":scheme", "http"), (":path", "/ok-a%d" % i),
                             (":authority", a)])
        ok("ok_host%d" % i, [(":method", "GET"), (":scheme", "http"), (":path", "/ok-h%d" % i),
                             ("host", a)])
    for n in ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"):
        ok("conn_" + n, base("/bad-" + n) + [(n, "x")])
    ok("te_gzip", base("/bad-te") + [("te", "gzip")])
    ok("te_trailers", base("/ok-te") + [("te", "Trailers")])
    ok("cl_ok", base("/ok-cl", "POST") + [("content-length", "5")], False, [b"hello"])
    ok("cl_two_frames", base("/ok-cl2", "POST") + [("content-length", "5")], False, [b"he", b"llo"])
    ok("cl_short", base("/bad-cls", "POST") + [("content-length", "10")], False, [b"hello"])
    ok("cl_long", base("/bad-cll", "POST") + [("content-length", "3")], False, [b"hello"])
    ok("cl_headers_end", base("/bad-clh", "POST") + [("content-length", "5")])
    ok("cl_zero_end", base("/ok-cl0", "POST") + [("content-length", "0")])
    ok("cl_dup", base("/bad-cld", "POST") + [("content-length", "5"), ("content-length", "5")],
       False, [b"hello"])
    ok("cl_letters", base("/bad-clx", "POST") + [("content-length", "abc")], False, [b"abc"])
    ok("cl_negative", base("/bad-cln", "POST") + [("content-length", "-1")], False, [b""])
    ok("cl_huge", base("/bad-clbig", "POST") + [("content-length", "99999999999999999999")],
       False, [b"x"])
    ok("trailers_ok", base("/ok-tr", "POST"), False, [b"abc"], [("x-t", "1")])
    ok("trailers_no_end", base("/bad-trne", "POST"), False, [b"abc"], [("x-t", "1")], False)
    ok("trailers_pseudo", base("/bad-trp", "POST"), False, [b"abc"], [(":path", "/x")])
    ok("trailers_upper", base("/bad-tru", "POST"), False, [b"abc"], [("X-T", "1")])
    ok("trailers_cl_ok", base("/ok-trcl", "POST") + [("content-length", "3")], False, [b"abc"],
       [("x-t", "1")])
    ok("connect_with_path", [(":method", "CONNECT"), (":authority", "h:1"), (":path", "/bad-cp")])
    ok("connect_no_authority", [(":method", "CONNECT")])
    ok("last", base("/ok-last"))
    return c


class Peer:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.s.sendall(PREFACE + frame(SETTINGS, 0, 0))

    def recv_frame(self):
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    t, fl = self.buf[3], self.buf[4]
                    sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                    p = self.buf[9:9 + n]
                    self.buf = self.buf[9 + n:]
                    if t == SETTINGS and not fl & ACK:
                        self.s.sendall(frame(SETTINGS, ACK, 0))
                    return t, fl, sid, p
            b = self.s.recv(65536)
            if not b:
                return None
            self.buf += b

    def outcome(self, sid):
        status = None
        while True:
            f = self.recv_frame()
            if f is None:
                return "eof"
            t, fl, s, p = f
            if t == GOAWAY:
                return "goaway %d" % struct.unpack(">I", p[4:8])[0]
            if s != sid:
                continue
            if t == HEADERS:
                for k, v in self.dec.decode(p):
                    if k in (":status", b":status"):
                        status = int(v)
            elif t == RST:
                return "rst %d" % struct.unpack(">I", p)[0]
            if fl & END_STREAM and t in (HEADERS, DATA) and (status or 0) >= 200:
                return "status %d" % status


def main():
    p = Peer(int(sys.argv[1]))
    sid = 1
    for name, fields, end, data, tr, tr_end in cases():
        hb = p.enc.encode(fields, huffman=False)
        out = frame(HEADERS, END_HEADERS | (END_STREAM if end else 0), sid, hb)
        for i, d in enumerate(data):
            last = i == len(data) - 1 and tr is None
            out += frame(DATA, END_STREAM if last else 0, sid, d)
        if tr is not None:
            out += frame(HEADERS, END_HEADERS | (END_STREAM if tr_end else 0), sid,
                         p.enc.encode(tr, huffman=False))
        p.s.sendall(out)
        print("%s: %s" % (name, p.outcome(sid)), flush=True)
        sid += 2
    print("done")


main()
