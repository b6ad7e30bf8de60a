"""tests/http/h2_fair_peer.py - the client of test_h2_fair: raw HTTP/2
frames (h2_peer.py's Peer) that keep some streams' flow-control windows shut
on purpose. Usage: h2_fair_peer.py PORT SCENARIO. Prints what it saw, one
fact a line, in the order it happened, for the C test to check; exits 0
unless the socket failed.

Scenarios (every request is GET /fair/<bytes>, a streamed answer):
  stream  SETTINGS_INITIAL_WINDOW_SIZE 0 and a wide connection window; stream
          1 (A) never gets a WINDOW_UPDATE, stream 3 (B) gets one for every
          byte it receives. B must end while A stays stuck; then A is reset
          (the server's zero-window stall timeout), and stream 5 is served.
  conn    the streams' windows wide, the connection's never given back: after
          its first 65535 bytes nothing moves until both streams are reset.
  many    five streams kept shut (INITIAL_WINDOW_SIZE 0), the connection's
          window wide: all five are reset, no byte of DATA arrives.
"""
import struct
import sys

from h2_peer import DATA, END_STREAM, GOAWAY, HEADERS, PREFACE, RST, SETTINGS, WINDOW, Peer, frame

INITIAL_WINDOW_SIZE = 4


def win(sid, n):
    return frame(WINDOW, 0, sid, struct.pack(">I", n))


def watch(p, streams, grant, want_end):
    """Reads frames until every stream of `streams` ended (END_STREAM or
    RST_STREAM); prints each end as it comes, with the DATA bytes the stream
    got. grant: streams whose DATA is given back at once (stream and
    connection windows). want_end: the stream ids to wait for."""
    got = {s: 0 for s in streams}
    left = set(want_end)
    while left:
        f = p.recv_frame()
        if f is None:
            print("eof")
            return got
        t, fl, sid, pl = f
        if t == GOAWAY:
            print("goaway %d" % struct.unpack(">I", pl[4:8])[0])
            return got
        if sid not in got:
            continue
        if t == DATA:
            got[sid] += len(pl)
            if pl and sid in grant:
                p.send(win(0, len(pl)) + win(sid, len(pl)))
        if t == RST:
            print("stream %d: %d bytes, rst %d" % (sid, got[sid], struct.unpack(">I", pl)[0]))
            left.discard(sid)
        elif t in (HEADERS, DATA) and fl & END_STREAM:
            print("stream %d: %d bytes, end" % (sid, got[sid]))
            left.discard(sid)
    return got


def main():
    port, what = int(sys.argv[1]), sys.argv[2]
    p = Peer(port)
    p.s.settimeout(30)  # the resets come after the server's write timeout
    if what == "stream":
        p.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 0)) +
               win(0, 16 << 20))
        p.request(1, "/fair/1048576")
        p.request(3, "/fair/524288")
        p.send(win(3, 65535))
        watch(p, (1, 3), grant={3}, want_end=(1, 3))
        p.request(5, "/")
        p.send(win(5, 65535))
        st, body, err = p.response(5)
        print("stream 5: status", st, err)
    elif what == "conn":
        p.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 1 << 20)))
        p.request(1, "/fair/1048576")
        p.request(3, "/fair/1048576")
        got = watch(p, (1, 3), grant=set(), want_end=(1, 3))
        print("data", got[1] + got[3])
    elif what == "many":
        p.send(PREFACE + frame(SETTINGS, 0, 0, struct.pack(">HI", INITIAL_WINDOW_SIZE, 0)) +
               win(0, 16 << 20))
        ids = (1, 3, 5, 7, 9)
        for sid in ids:
            p.request(sid, "/fair/1048576")
        got = watch(p, ids, grant=set(), want_end=ids)
        print("data", sum(got.values()))
    else:
        print("unknown scenario")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
