"""bench/tls_bench.py - the TLS workloads of `make bench` (bench/harness.py
imports it; run alone with `bash bench/run.sh --only tls`).

Side by side in one run, server pinned to the server core and the load to the
other: loom-hello --tls-cert/--tls-key, nginx (`ssl`, one worker,
ssl_session_tickets on) and h2o, all on the system's OpenSSL 3, with the same
ECDSA P-256 certificate, TLS 1.3 and TLS_AES_128_GCM_SHA256 (forced for every
process through an OPENSSL_CONF file: servers and load tools alike).

  tls_keepalive   wrk -c100 over https, keep-alive: requests per server CPU-second
  tls_full        openssl s_time -new: full handshakes (a new connection per
                  request, no resumption) per server CPU-second
  tls_resumed     openssl s_time -reuse: resumed handshakes per server CPU-second
  tls_bulk        curl downloads 1 GiB over one https connection: MiB per
                  server CPU-second (loom-hello's /bulk/N route, streamed in
                  64 KiB writes; nginx and h2o serve a 1 GiB file)
  tls_memory      user-space bytes per idle TLS keep-alive connection after its
                  handshake and one request (server RSS growth / connections)
  tls_client      loom-fetch --parallel 64 against nginx over https, against
                  libcurl multi (bench-curl-multi) when it speaks https
"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import time

METRICS = {
    "tls_keepalive": ("tls: https keep-alive, wrk -c100", "req/CPU-s", True),
    "tls_full": ("tls: full handshakes, s_time -new", "hs/CPU-s", True),
    "tls_resumed": ("tls: resumed handshakes, s_time -reuse", "hs/CPU-s", True),
    "tls_bulk": ("tls: bulk download, 1 GiB over one connection", "MiB/CPU-s", True),
    "tls_memory": ("tls: idle keep-alive conns after a request", "B/conn", False),
    "tls_client": ("tls: client, 64 in flight, nginx over https", "req/s", True),
}

OPENSSL_CNF = """openssl_conf = loom_bench
[loom_bench]
ssl_conf = loom_bench_ssl
[loom_bench_ssl]
system_default = loom_bench_sys
[loom_bench_sys]
MinProtocol = TLSv1.3
Ciphersuites = TLS_AES_128_GCM_SHA256
"""

NGINX_TLS = """daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid @TMP@/nginx.pid;
error_log @TMP@/nginx-error.log warn;
events {
    worker_connections 20000;
    use epoll;
}
http {
    access_log off;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 300s;
    client_body_temp_path @TMP@/client_body;
    proxy_temp_path @TMP@/proxy;
    fastcgi_temp_path @TMP@/fastcgi;
    uwsgi_temp_path @TMP@/uwsgi;
    scgi_temp_path @TMP@/scgi;
    server {
        listen 127.0.0.1:@PORT@ ssl backlog=4096;
        ssl_certificate @CERT@;
        ssl_certificate_key @KEY@;
        ssl_protocols TLSv1.3;
        ssl_session_tickets on;
        location / {
            default_type text/plain;
            return 200 "omglolwtf";
        }
        location /bulk/ {
            alias @BULK@/;
            default_type application/octet-stream;
            output_buffers 2 256k;
        }
    }
}
"""

H2O_TLS = """listen:
  host: 127.0.0.1
  port: @PORT@
  ssl:
    certificate-file: @CERT@
    key-file: @KEY@
    minimum-version: TLSv1.2
    ocsp-update-interval: 0
num-threads: 1
user: root  # dropped when not run as root
max-connections: 20000
pid-file: @TMP@/h2o.pid
error-log: @TMP@/h2o-error.log
http1-request-timeout: 300
hosts:
  default:
    paths:
      /bulk:
        file.dir: @BULK@
      /:
        file.dir: @TMP@/htdocs
        file.index: [ 'index.txt' ]
"""


class Setup:
    def __init__(self, h, ctx):
        self.h, self.ctx = h, ctx
        self.dir = os.path.join(ctx.tmp, "tls")
        os.makedirs(self.dir, exist_ok=True)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.cnf = os.path.join(self.dir, "openssl.cnf")
        with open(self.cnf, "w") as f:
            f.write(OPENSSL_CNF)
        self.error = None
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj",
                            "/CN=localhost", "-addext",
                            "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", self.key,
                            "-out", self.cert], capture_output=True, text=True)
        if r.returncode != 0:
            self.error = "openssl req failed: %s" % r.stderr[-200:]
        self.env = {"OPENSSL_CONF": self.cnf}
        self.bulk_dir = os.path.join(self.dir, "bulk")
        self.bulk_path = "/bulk/%d" % BULK_BYTES

    def make_bulk(self):
        """The 1 GiB file nginx and h2o serve (sparse: read as zeros)."""
        os.makedirs(self.bulk_dir, exist_ok=True)
        # nginx's worker runs as nobody: it must reach the file (mkdtemp
        # makes the run's directory 0700).
        for d in (self.ctx.tmp, self.dir, self.bulk_dir):
            os.chmod(d, 0o711)
        f = os.path.join(self.bulk_dir, str(BULK_BYTES))
        if not os.path.exists(f):
            with open(f, "wb") as out:
                out.truncate(BULK_BYTES)
            os.chmod(f, 0o644)

    def fill(self, text, port):
        d = os.path.join(self.dir, "srv-%d" % port)
        os.makedirs(os.path.join(d, "htdocs"), exist_ok=True)
        with open(os.path.join(d, "htdocs", "index.txt"), "wb") as f:
            f.write(self.h.BODY)
        return d, (text.replace("@PORT@", str(port)).replace("@TMP@", d)
                   .replace("@CERT@", self.cert).replace("@KEY@", self.key)
                .replace("@BULK@", self.bulk_dir))

    def servers(self):
        """(name, role, argv(port) or None, why)."""
        out = []
        hello = self.ctx.loom("loom-hello")
        if hello and self.h.supports(hello, "--tls-cert"):
            out.append(("loom-hello", "loom",
                        lambda port: [hello, "--port", str(port), "--tls-cert", self.cert,
                                      "--tls-key", self.key] + self.h.loopback_args(hello),
                        None))
        else:
            out.append(("loom-hello", "loom", None, "loom-hello has no --tls-cert"))
        ng = shutil.which("nginx") or "/usr/sbin/nginx"
        if os.path.exists(ng):
            def ng_argv(port):
                d, text = self.fill(NGINX_TLS, port)
                conf = os.path.join(d, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(text)
                return [ng, "-p", d, "-c", conf, "-e", os.path.join(d, "nginx-error.log")]
            out.append(("nginx", "peer", ng_argv, None))
        else:
            out.append(("nginx", "peer", None, "nginx not installed"))
        h2o = shutil.which("h2o") or "/usr/sbin/h2o"
        if os.path.exists(h2o):
            def h2o_argv(port):
                d, text = self.fill(H2O_TLS, port)
                if os.geteuid() != 0:
                    text = "".join(l for l in text.splitlines(True) if not l.startswith("user:"))
                conf = os.path.join(d, "h2o.conf")
                with open(conf, "w") as f:
                    f.write(text)
                return [h2o, "-c", conf]
            out.append(("h2o", "peer", h2o_argv, None))
        else:
            out.append(("h2o", "peer", None, "h2o not installed"))
        return out

    def start(self, name, argv):
        """Starts a server pinned to the server core; (Running, None) or (None, why)."""
        h = self.h
        port = h.free_port()
        p = self.ctx.procs.spawn(argv(port), core=h.SERVER_CORE, env=self.env,
                                 name=h.slug(name) + "-tls")
        if not h.wait_listening(port, [p]):
            why = "did not start listening: %s" % (h.log_tail(p) or "exit %s" % p.poll())
            self.ctx.procs.stop(p)
            return None, why
        why = https_check(port, self.cert)
        if why:
            self.ctx.procs.stop(p)
            return None, why
        return h.Running(h.Program(name, "tls", argv), p, port), None


def https_check(port, cafile):
    """One GET over https; None if it answered 200 "omglolwtf", else why."""
    try:
        c = ssl.create_default_context(cafile=cafile)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with c.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
        if not data.startswith(b"HTTP/1.1 200") or not data.endswith(b"omglolwtf"):
            return "unexpected answer: %r" % data[:80]
        return None
    except (OSError, ssl.SSLError) as e:
        return "https check failed: %s" % e


BULK_BYTES = 1 << 30


def run_bulk(st, srv):
    """curl downloads BULK_BYTES over one https connection to srv (load
    core), HTTP/1.1 for every server (loom-hello also speaks h2 by ALPN);
    returns (bytes, error)."""
    h = st.h
    curl = shutil.which("curl")
    if not curl:
        return None, "curl not installed"
    argv = [curl, "-sS", "--http1.1", "--cacert", st.cert, "-o", "/dev/null", "-w",
            "%{size_download}\\n",
            "https://localhost:%d%s" % (srv.port, st.bulk_path)]
    out, err = h.run_cmd(st.ctx.procs, argv, h.LOAD_CORE, 120, env=st.env, name="curl-bulk")
    if err:
        return None, err
    try:
        n = int(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, "cannot parse curl output: %s" % out.strip()[-160:]
    if n != BULK_BYTES:
        return None, "downloaded %d of %d bytes" % (n, BULK_BYTES)
    return n, None


def run_s_time(st, srv, secs, reuse):
    """openssl s_time against srv; returns (connections, error)."""
    h = st.h
    argv = ["openssl", "s_time", "-connect", "127.0.0.1:%d" % srv.port, "-www", "/",
            "-time", str(secs), "-reuse" if reuse else "-new", "-CAfile", st.cert]
    out, err = h.run_cmd(st.ctx.procs, argv, h.LOAD_CORE, secs + 30, env=st.env, name="s_time")
    if err:
        return None, err
    m = re.search(r"(\d+) connections in [\d.]+s", out)
    if not m:
        return None, "cannot parse s_time: %s" % out.strip()[-160:]
    return int(m.group(1)), None


def run_wrk_tls(st, srv, conns, secs):
    h = st.h
    wrk = shutil.which("wrk")
    if not wrk:
        return None, "wrk not installed"
    argv = [wrk, "-t1", "-c%d" % conns, "-d%ds" % secs, "https://127.0.0.1:%d/" % srv.port]
    out, err = h.run_cmd(st.ctx.procs, argv, h.LOAD_CORE, secs + 30, env=st.env, name="wrk-tls")
    if err:
        return None, err
    m, rps = h.WRK_REQ.search(out), h.WRK_RPS.search(out)
    if not m or not rps:
        return None, "cannot parse wrk output: %s" % out.strip()[-200:]
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(m.group(1)), "req_per_s": float(rps.group(1)),
            "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errs.groups())) if errs else 0}, None


def idle_conns(st, srv, n):
    """Opens n TLS keep-alive connections (one request each) and holds them
    while the server's RSS growth is read. Returns (bytes per conn, error)."""
    h = st.h
    time.sleep(0.3)
    before = h.rss_bytes(srv.pids())
    c = ssl.create_default_context(cafile=st.cert)
    socks = []
    try:
        for _ in range(n):
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            s = c.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            while not data.endswith(b"omglolwtf"):
                d = s.recv(4096)
                if not d:
                    return None, "connection closed after %d" % len(socks)
                data += d
            socks.append(s)
        time.sleep(0.5)
        after = h.rss_bytes(srv.pids())
        return (after - before) / n, None
    except (OSError, ssl.SSLError) as e:
        return None, "after %d connections: %s" % (len(socks), e)
    finally:
        for s in socks:
            s.close()


def wl_tls(h, ctx, res):
    st = Setup(h, ctx)
    s = ctx.s
    secs = s["http_s"]
    servers = st.servers()
    keys = ("tls_keepalive", "tls_full", "tls_resumed", "tls_bulk", "tls_memory")
    st.make_bulk()
    for name, role, argv, why in servers:
        for m in keys:
            if st.error or not argv:
                res.na(m, name, role, st.error or why)
            else:
                res.row(m, name, role)
    live = [(n, r, a) for n, r, a, w in servers if a and not st.error]
    for run in range(s["runs"]):
        for name, role, argv in live:
            srv, why = st.start(name, argv)
            if not srv:
                for m in keys:
                    res.na(m, name, role, why)
                continue
            try:
                pids = srv.pids()
                c0 = h.cpu_seconds(pids)
                w, err = run_wrk_tls(st, srv, 100, secs)
                cpu = h.cpu_seconds(pids) - c0
                if err or not w["requests"] or w["non2xx"]:
                    res.na("tls_keepalive", name, role, err or "%d requests, %d non-2xx" % (
                        w["requests"], w["non2xx"]))
                elif cpu > 0:
                    w["server_cpu_s"] = round(cpu, 3)
                    res.add("tls_keepalive", name, role, w["requests"] / cpu, w)
                for metric, reuse in (("tls_full", False), ("tls_resumed", True)):
                    c0 = h.cpu_seconds(pids)
                    n, err = run_s_time(st, srv, secs, reuse)
                    cpu = h.cpu_seconds(pids) - c0
                    if err or not n:
                        res.na(metric, name, role, err or "no connection")
                    elif cpu > 0:
                        res.add(metric, name, role, n / cpu,
                                {"connections": n, "server_cpu_s": round(cpu, 3)})
                c0 = h.cpu_seconds(pids)
                n, err = run_bulk(st, srv)
                cpu = h.cpu_seconds(pids) - c0
                if err or not n:
                    res.na("tls_bulk", name, role, err or "nothing downloaded")
                elif cpu > 0:
                    res.add("tls_bulk", name, role, n / (1 << 20) / cpu,
                            {"bytes": n, "server_cpu_s": round(cpu, 3)})
            finally:
                ctx.procs.stop(srv.proc)
            # Memory on a fresh server (freed memory stays in a process).
            srv, why = st.start(name, argv)
            if not srv:
                res.na("tls_memory", name, role, why)
                continue
            try:
                v, err = idle_conns(st, srv, 1000 if ctx.quick else 2000)
                if err:
                    res.na("tls_memory", name, role, err)
                else:
                    res.add("tls_memory", name, role, v, {"conns": 1000 if ctx.quick else 2000})
            finally:
                ctx.procs.stop(srv.proc)
    wl_tls_client(h, ctx, res, st)


def wl_tls_client(h, ctx, res, st):
    """loom-fetch over https against nginx; libcurl multi when its harness
    program takes --cacert."""
    names = [("loom-fetch", "loom"), ("libcurl multi", "peer")]
    ng = [x for x in st.servers() if x[0] == "nginx"][0]
    if st.error or not ng[2]:
        for n, role in names:
            res.na("tls_client", n, role, st.error or ng[3])
        return
    srv, why = st.start("nginx", ng[2])
    if not srv:
        for n, role in names:
            res.na("tls_client", n, role, "nginx: %s" % why)
        return
    fetch = ctx.loom("loom-fetch")
    curl = ctx.tool("bench-curl-multi")
    url = "https://127.0.0.1:%d/" % srv.port
    m = str(ctx.s["client_requests"] // 2)
    try:
        for run in range(ctx.s["runs"]):
            if fetch and h.supports(fetch, "--cacert"):
                out, err = h.run_cmd(ctx.procs, [fetch, "--cacert", st.cert, "--parallel", "64",
                                                  "--requests", m, url],
                                     h.LOAD_CORE, 120, env=st.env, name="loom-fetch-tls")
                rps = h.parse_rps(out) if not err else None
                if rps:
                    res.add("tls_client", "loom-fetch", "loom", rps,
                            {"output": out.strip().splitlines()[-1][:300]})
                else:
                    res.na("tls_client", "loom-fetch", "loom",
                           err or "no req/s in output: %s" % out.strip()[-120:])
            else:
                res.na("tls_client", "loom-fetch", "loom", "loom-fetch has no --cacert")
            if curl and h.supports(curl, "--cacert"):
                out, err = h.run_cmd(ctx.procs, [curl, "--cacert", st.cert, "--parallel", "64",
                                                 "--requests", m, url],
                                     h.LOAD_CORE, 120, env=st.env, name="curl-multi-tls")
                j = h.last_json(out)
                if j and not err:
                    res.add("tls_client", "libcurl multi", "peer", j["req_per_s"], j)
                else:
                    res.na("tls_client", "libcurl multi", "peer", err or "no result")
            else:
                res.na("tls_client", "libcurl multi", "peer", "bench-curl-multi has no --cacert")
    finally:
        ctx.procs.stop(srv.proc)
