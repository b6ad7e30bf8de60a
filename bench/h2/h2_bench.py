"""bench/h2/h2_bench.py - the HTTP/2 server workloads of `make bench`
(bench/harness.py imports it; run alone with `bash bench/run.sh --only h2`).

Side by side in one run, server pinned to the server core and h2load to the
other: loom-hello (h2 by ALPN with --tls-cert/--tls-key, h2c with --h2c),
nginx (`http2`, one worker) and h2o, with the certificate and cipher of the
TLS workloads (ECDSA P-256, TLS 1.3, TLS_AES_128_GCM_SHA256, forced through
the same OPENSSL_CONF file; bench/tls_bench.py's Setup).

  h2_tls     h2load -c100 -m10 over https (ALPN h2): requests per server CPU-second
  h2c        the same load with h2c prior knowledge: requests per server CPU-second
  h2_one     h2load -c1 -m100 over https: requests per second
  h2_memory  user-space bytes per idle h2 connection (TLS, SETTINGS exchanged
             and one request answered), server RSS growth / connections

h2_memory holds its connections for a minute or more (10,000 Python TLS
handshakes on a loaded core): every server is given an idle timeout of 300 s
(nginx's keepalive_timeout of the TLS configuration, h2o's
http2-idle-timeout, loom-hello --idle-timeout), and the figure is refused
if any connection was closed by the server before the RSS was read - a
server that dropped its early connections reuses their memory for the later
ones and reports too little (h2o's default HTTP/2 idle timeout is 10 s,
loom's 60 s).
"""
import os
import re
import select
import shutil
import socket
import ssl
import struct
import time

import tls_bench

METRICS = {
    "h2_tls": ("h2: 100 conns x 10 streams over TLS, h2load", "req/CPU-s", True),
    "h2c": ("h2: h2c prior knowledge, 100 conns x 10 streams", "req/CPU-s", True),
    "h2_one": ("h2: one connection, 100 streams, over TLS", "req/s", True),
    "h2_memory": ("h2: idle h2 connections over TLS after a request", "B/conn", False),
}

NGINX_H2 = tls_bench.NGINX_TLS.replace(
    "listen 127.0.0.1:@PORT@ ssl backlog=4096;",
    "listen 127.0.0.1:@PORT@ ssl http2 backlog=4096;\n"
    "        listen 127.0.0.1:@PORT2@ http2 backlog=4096;\n"
    "        http2_max_concurrent_streams 128;")

# h2o: the TLS configuration as is (h2 by ALPN), and without its ssl block
# on the plain port for h2c (h2o takes prior knowledge there).
H2O_H2C = re.sub(r"  ssl:\n(    .*\n)+", "", tls_bench.H2O_TLS).replace("@PORT@", "@PORT2@")
# Idle connections are kept for the memory workload's duration (see above).
H2O_IDLE = "http2-idle-timeout: 300\n"


class Setup(tls_bench.Setup):
    """Each server listens on two ports: TLS (h2 by ALPN) and plain (h2c)."""

    def fill2(self, text, port, port2):
        return self.fill(text.replace("@PORT2@", str(port2)), port)

    def servers2(self):
        hello = self.ctx.loom("loom-hello")
        idle = ["--idle-timeout", "300"] if hello and self.h.supports(hello, "--idle-timeout") else []
        out = []
        if hello and self.h.supports(hello, "--h2c"):
            # Two processes would double the CPU counted; loom-hello serves
            # one port, so each workload starts the one it needs.
            out.append(("loom-hello", "loom", {
                "tls": lambda p, p2: [hello, "--port", str(p), "--tls-cert", self.cert,
                                      "--tls-key", self.key] + idle,
                "h2c": lambda p, p2: [hello, "--port", str(p2), "--h2c"]}, None))
        else:
            out.append(("loom-hello", "loom", None, "loom-hello has no --h2c"))
        ng = shutil.which("nginx") or "/usr/sbin/nginx"
        if os.path.exists(ng):
            def ng_argv(p, p2):
                d, text = self.fill2(NGINX_H2, p, p2)
                conf = os.path.join(d, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(text)
                return [ng, "-p", d, "-c", conf, "-e", os.path.join(d, "nginx-error.log")]
            out.append(("nginx", "peer", {"tls": ng_argv, "h2c": ng_argv}, None))
        else:
            out.append(("nginx", "peer", None, "nginx not installed"))
        h2o = shutil.which("h2o") or "/usr/sbin/h2o"
        if os.path.exists(h2o):
            def h2o_argv(p, p2, text0):
                d, text = self.fill2(text0, p, p2)
                if os.geteuid() != 0:
                    text = "".join(l for l in text.splitlines(True) if not l.startswith("user:"))
                conf = os.path.join(d, "h2o.conf")
                with open(conf, "w") as f:
                    f.write(text)
                return [h2o, "-c", conf]
            out.append(("h2o", "peer", {
                "tls": lambda p, p2: h2o_argv(p, p2, H2O_IDLE + tls_bench.H2O_TLS),
                "h2c": lambda p, p2: h2o_argv(p, p2, H2O_IDLE + H2O_H2C)}, None))
        else:
            out.append(("h2o", "peer", None, "h2o not installed"))
        return out

    def start2(self, name, argv, which):
        """Starts a server pinned to the server core; (Running, port, None)
        or (None, None, why). `which`: "tls" or "h2c", the port used."""
        h = self.h
        port, port2 = h.free_port(), h.free_port()
        p = self.ctx.procs.spawn(argv(port, port2), core=h.SERVER_CORE, env=self.env,
                                 name=h.slug(name) + "-h2")
        use = port if which == "tls" else port2
        if not h.wait_listening(use, [p]):
            why = "did not start listening: %s" % (h.log_tail(p) or "exit %s" % p.poll())
            self.ctx.procs.stop(p)
            return None, None, why
        return h.Running(h.Program(name, "h2", argv), p, use), use, None


H2LOAD_REQ = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                        r"(\d+) failed, (\d+) errored")
H2LOAD_RPS = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")


def run_h2load(st, url, conns, streams, secs):
    h = st.h
    tool = shutil.which("h2load")
    if not tool:
        return None, "h2load not installed (nghttp2-client)"
    argv = [tool, "-c%d" % conns, "-m%d" % streams, "-D%d" % secs, "-t1", url]
    out, err = h.run_cmd(st.ctx.procs, argv, h.LOAD_CORE, secs + 60, env=st.env, name="h2load")
    if err:
        return None, err
    m, rps = H2LOAD_REQ.search(out), H2LOAD_RPS.search(out)
    if not m or not rps:
        return None, "cannot parse h2load output: %s" % out.strip()[-200:]
    if "h2" not in out:
        return None, "h2load did not negotiate h2"
    ok, failed, errored = int(m.group(2)), int(m.group(3)), int(m.group(4))
    return {"requests": ok, "failed": failed, "errored": errored,
            "req_per_s": float(rps.group(1))}, None


def frame(ftype, flags, sid, payload=b""):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
            struct.pack(">I", sid) + payload)


# A GET / for stream 1 in HPACK without the dynamic table: :method GET (2),
# :scheme https (7), :path / (4), :authority localhost (literal, name 1).
GET = bytes([0x82, 0x87, 0x84, 0x41, 9]) + b"localhost"


def closed_by_server(s):
    """Whether an idle connection with bytes to read was ended by the server."""
    s.setblocking(False)
    try:
        data = s.recv(65536)
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except (OSError, ssl.SSLError):
        return True
    if not data:
        return True
    i = 0
    while i + 9 <= len(data):
        if data[i + 3] == 7:  # GOAWAY
            return True
        i += 9 + int.from_bytes(data[i:i + 3], "big")
    return False


def idle_h2(st, port, n):
    """Opens n h2 connections over TLS, one GET each, and holds them while
    the server's RSS growth is read. Returns (bytes per conn, error)."""
    h = st.h
    srv_pids = st.cur.pids()
    time.sleep(0.3)
    before = h.rss_bytes(srv_pids)
    c = ssl.create_default_context(cafile=st.cert)
    c.set_alpn_protocols(["h2"])
    socks = []
    try:
        for _ in range(n):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            s = c.wrap_socket(raw, server_hostname="localhost")
            if s.selected_alpn_protocol() != "h2":
                return None, "ALPN did not select h2"
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) +
                      frame(1, 5, 1, GET))
            data = b""
            # Wait for the answer's END_STREAM (a DATA frame of 9 bytes).
            while b"omglolwtf" not in data:
                d = s.recv(65536)
                if not d:
                    return None, "connection closed after %d" % len(socks)
                data += d
            s.sendall(frame(4, 1, 0))  # SETTINGS ack
            socks.append(s)
        time.sleep(0.5)
        after = h.rss_bytes(srv_pids)
        socks_by_fd = {s.fileno(): s for s in socks}
        # Every connection must still be open: one with something to read
        # is looked at (eof, an error or a GOAWAY: closed by the server).
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        closed = sum(1 for fd, _ in poller.poll(0) if closed_by_server(socks_by_fd[fd]))
        if closed:
            return None, ("%d of %d connections were closed by the server before the "
                          "measurement (idle timeout?)" % (closed, n))
        return (after - before) / n, None
    except (OSError, ssl.SSLError) as e:
        return None, "after %d connections: %s" % (len(socks), e)
    finally:
        for s in socks:
            s.close()


def wl_h2(h, ctx, res):
    st = Setup(h, ctx)
    secs = ctx.s["http_s"]
    servers = st.servers2()
    keys = ("h2_tls", "h2c", "h2_one", "h2_memory")
    for name, role, argv, why in servers:
        for m in keys:
            if st.error or not argv:
                res.na(m, name, role, st.error or why)
            else:
                res.row(m, name, role)
    live = [(n, r, a) for n, r, a, w in servers if a and not st.error]
    nidle = 2000 if ctx.quick else 10000
    for run in range(ctx.s["runs"]):
        for name, role, argv in live:
            for metric, which, conns, streams in (("h2_tls", "tls", 100, 10),
                                                  ("h2c", "h2c", 100, 10),
                                                  ("h2_one", "tls", 1, 100)):
                srv, port, why = st.start2(name, argv[which], which)
                if not srv:
                    res.na(metric, name, role, why)
                    continue
                try:
                    scheme = "https" if which == "tls" else "http"
                    pids = srv.pids()
                    c0 = h.cpu_seconds(pids)
                    w, err = run_h2load(st, "%s://127.0.0.1:%d/" % (scheme, port), conns,
                                        streams, secs)
                    cpu = h.cpu_seconds(pids) - c0
                    if err or not w["requests"] or w["failed"] or w["errored"]:
                        res.na(metric, name, role, err or "%s" % w)
                    elif metric == "h2_one":
                        w["server_cpu_s"] = round(cpu, 3)
                        res.add(metric, name, role, w["req_per_s"], w)
                    elif cpu > 0:
                        w["server_cpu_s"] = round(cpu, 3)
                        res.add(metric, name, role, w["requests"] / cpu, w)
                finally:
                    ctx.procs.stop(srv.proc)
            srv, port, why = st.start2(name, argv["tls"], "tls")
            if not srv:
                res.na("h2_memory", name, role, why)
                continue
            try:
                st.cur = srv
                v, err = idle_h2(st, port, nidle)
                if err:
                    res.na("h2_memory", name, role, err)
                else:
                    res.add("h2_memory", name, role, v, {"conns": nidle})
            finally:
                ctx.procs.stop(srv.proc)
