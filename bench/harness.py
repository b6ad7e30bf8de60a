#!/usr/bin/env python3
"""loom's benchmark harness (issue 7). Run through bench/run.sh.

Runs every workload for loom's programs, the peers (libuv, libevent, libev,
nginx, h2o, libcurl, wrk) and the raw-epoll limit probes, pinning servers to
one core and load generators to another, and reports the median of several
runs: a plain-text table on stdout, bench/results/latest.json and one PNG
plot per figure. A loom program that is not built yet shows as n/a; nothing
here fails because one is missing.

Standard library only.
"""

import argparse
import glob
import http.client
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BODY = b"omglolwtf"

# --- Settings ---------------------------------------------------------------

FULL = dict(runs=3, timers=1_000_000, echo_s=5, http_s=5, mem_conns=15000, mem_runs=3,
            conc_runs=3, conc_delay=5, conc_s=7, conc_procs=6, conc_max=18500,
            client_requests=200_000, client_wrk_s=3, backend_s=3)
QUICK = dict(runs=1, timers=1_000_000, echo_s=2, http_s=2, mem_conns=15000, mem_runs=1,
             conc_runs=1, conc_delay=5, conc_s=4.5, conc_procs=6, conc_max=18500,
             client_requests=60_000, client_wrk_s=1, backend_s=1)

BACKENDS = ["epoll", "poll", "io_uring", "uv", "event", "ev"]

# Every figure the suite reports: id, title, unit, whether higher is better.
METRICS = {
    "timers_start_stop": ("timers: start + stop, 1M timers", "ns/timer", False),
    "timers_fire": ("timers: start + run until all fired, 1M timers", "CPU ns/timer", False),
    "echo": ("echo: 100 conns, 64 B ping-pong", "msg/CPU-s", True),
    "http_plain": ("http: keep-alive, wrk -c100", "req/CPU-s", True),
    "http_pipelined": ("http: 16-deep pipelining, wrk -c100", "req/s", True),
    "memory": ("memory: 15,000 idle keep-alive conns", "B/conn", False),
    "conc_peak": ("concurrency: peak concurrent conns (delay server)", "conns", True),
    "conc_rate": ("concurrency: connection rate while ramping", "conn/s", True),
    "conc_rss": ("concurrency: server RSS at peak", "MiB", False),
    "http_client": ("http client: 64 in flight, keep-alive, nginx", "req/s", True),
    "backend_echo": ("backends: loom-echo per backend", "msg/CPU-s", True),
    "backend_bulk": ("backends: loom-echo 64 KiB messages, 10 conns, per backend", "MiB/CPU-s",
                     True),
    "backend_http_plain": ("backends: loom-hello keep-alive per backend", "req/CPU-s", True),
    "backend_http_pipelined": ("backends: loom-hello pipelined per backend", "req/CPU-s", True),
    "proc_spawn": ("processes: spawn /bin/true and wait for its exit, in turn", "spawns/s", True),
    "proc_pipe": ("processes: 1 GiB from a child's stdout pipe", "MiB/parent-CPU-s", True),
    "proc_pipe_total": ("processes: 1 GiB from a child's stdout pipe", "MiB/(parent+child)-CPU-s",
                        True),
}


sys.path.insert(0, HERE)
from tls_bench import METRICS as TLS_METRICS  # noqa: E402
from ws_bench import METRICS as WS_METRICS  # noqa: E402

METRICS.update(TLS_METRICS)
from h2_client_bench import METRICS as H2_CLIENT_METRICS  # noqa: E402
METRICS.update(H2_CLIENT_METRICS)
METRICS.update(WS_METRICS)

from udp_bench import METRICS as UDP_METRICS  # noqa: E402

METRICS.update(UDP_METRICS)

sys.path.insert(0, os.path.join(HERE, "h2"))
from h2_bench import METRICS as H2_METRICS  # noqa: E402

METRICS.update(H2_METRICS)

# Backend rows are compared with the raw probe of the same workload. Not the
# pipelined one: its probe figure is req/s, the backend rows req/CPU-s.
PROBE_FROM = {"backend_echo": "echo", "backend_http_plain": "http_plain"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- Processes ----------------------------------------------------------------


class Procs:
    """Every process the harness starts runs in its own process group, and
    its group id is written to $BENCH_PIDFILE so that run.sh's EXIT trap can
    end it even if this script dies."""

    def __init__(self, tmp, pidfile):
        self.tmp = tmp
        self.pidfile = pidfile
        self.live = []
        self.n = 0

    def spawn(self, argv, core=None, env=None, stdin=subprocess.DEVNULL, stdout=None, name=None):
        if core is not None and CORES:
            argv = ["taskset", "-c", str(core)] + argv
        self.n += 1
        logpath = os.path.join(self.tmp, "%03d-%s.log" % (self.n, name or os.path.basename(argv[-1])))
        logf = open(logpath, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(argv, stdin=stdin, stdout=stdout if stdout is not None else logf,
                             stderr=logf, env=full_env, start_new_session=True)
        p.logpath = logpath
        logf.close()
        self.live.append(p)
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write("%d\n" % p.pid)
        return p

    def stop(self, p, timeout=3):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        else:
            # The leader is gone; children (nginx's worker) may not be.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(self.live):
            self.stop(p)


def log_tail(p, n=400):
    try:
        with open(p.logpath, "rb") as f:
            data = f.read()[-n:]
        return data.decode(errors="replace").strip().replace("\n", " | ")
    except OSError:
        return ""


def tree_pids(pid):
    """pid and all its descendants (nginx's worker, h2o's helper)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                s = f.read()
        except OSError:
            continue
        fields = s[s.rindex(")") + 2:].split()
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def fd_count(pids):
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, procs, timeout=8.0):
    """True once 127.0.0.1:port accepts, False if a process died first."""
    end = time.time() + timeout
    while time.time() < end:
        if any(p.poll() is not None for p in procs):
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def check_http(port):
    """One GET; returns None if it got 200 and the expected body, else why."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read()
        c.close()
    except (OSError, http.client.HTTPException) as e:
        return "GET / failed: %s" % e
    if r.status != 200:
        return "GET / answered %d" % r.status
    if body != BODY:
        return "GET / body is %r, not %r" % (body[:40], BODY)
    return None


def check_echo(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"x" * 64)
            got = b""
            while len(got) < 64:
                d = s.recv(64 - len(got))
                if not d:
                    break
                got += d
    except OSError as e:
        return "echo failed: %s" % e
    return None if got == b"x" * 64 else "echo returned %d bytes" % len(got)


def run_cmd(procs, argv, core, timeout, env=None, name=None):
    """Runs a load process to completion; returns (stdout text, error)."""
    p = procs.spawn(argv, core=core, env=env, stdout=subprocess.PIPE, name=name)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        procs.stop(p)
        return "", "timed out after %ds" % timeout
    procs.stop(p)
    if p.returncode != 0:
        return out.decode(errors="replace"), "exit %d: %s" % (p.returncode, log_tail(p))
    return out.decode(errors="replace"), None


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                pass
    return None


# --- Programs -----------------------------------------------------------------


class Program:
    """A server, client or benchmark executable. `argv(port)` builds its
    command line; `missing` says why it cannot run (then it shows as n/a)."""

    def __init__(self, name, role, argv=None, missing=None, env=None, kind="http"):
        self.name, self.role, self.argv, self.missing = name, role, argv, missing
        self.env = env or {}
        self.kind = kind


class Ctx:
    def __init__(self, args):
        self.build = os.path.abspath(args.build_dir)
        self.bin = os.path.join(self.build, "bench")
        self.examples = os.path.join(self.build, "examples")
        self.s = QUICK if args.quick else FULL
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="loom-bench-")
        self.procs = Procs(self.tmp, os.environ.get("BENCH_PIDFILE"))

    def tool(self, name):
        """A program of ours from <build>/bench/, or None."""
        p = os.path.join(self.bin, name)
        return p if os.access(p, os.X_OK) else None

    def loom(self, name):
        """A loom example program (another engineer's), or None."""
        for d in (self.examples, self.bin, os.path.join(self.build, "bin")):
            p = os.path.join(d, name)
            if os.access(p, os.X_OK):
                return p
        return None

    def ours(self, name, role, exe, extra=(), kind="http"):
        path = self.tool(exe)
        if not path:
            return Program(name, role, missing="%s not built (library missing?)" % exe, kind=kind)
        return Program(name, role, lambda port: [path, "--port", str(port)] + list(extra), kind=kind)

    def loom_prog(self, name, exe, env=None, kind="http"):
        path = self.loom(exe)
        if not path:
            return Program(name, "loom", missing="%s not built yet" % exe, kind=kind)
        extra = loopback_args(path)
        return Program(name, "loom", lambda port: [path, "--port", str(port)] + extra, env=env,
                       kind=kind)

    def nginx(self):
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
        if not exe:
            return Program("nginx", "peer", missing="nginx not installed")

        def argv(port):
            d = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
            conf = fill(os.path.join(HERE, "peers", "nginx.conf"), port, d)
            return [exe, "-p", d, "-c", conf, "-e", os.path.join(d, "nginx-error.log")]
        return Program("nginx", "peer", argv)

    def h2o(self):
        exe = shutil.which("h2o") or ("/usr/sbin/h2o" if os.path.exists("/usr/sbin/h2o") else None)
        if not exe:
            return Program("h2o", "peer", missing="h2o not installed")

        def argv(port):
            d = tempfile.mkdtemp(prefix="h2o-", dir=self.tmp)
            os.makedirs(os.path.join(d, "htdocs"))
            with open(os.path.join(d, "htdocs", "index.txt"), "wb") as f:
                f.write(BODY)
            conf = fill(os.path.join(HERE, "peers", "h2o.conf"), port, d)
            if os.geteuid() != 0:
                # `user:` is for a root start only; h2o refuses it otherwise.
                with open(conf) as f:
                    lines = [l for l in f if not l.startswith("user:")]
                with open(conf, "w") as f:
                    f.writelines(lines)
            return [exe, "-c", conf]
        return Program("h2o", "peer", argv)

    def http_servers(self, loom_env=None, loom_name="loom-hello"):
        return [self.loom_prog(loom_name, "loom-hello", env=loom_env),
                self.nginx(), self.h2o(),
                self.ours("libevent evhttp", "peer", "bench-http-evhttp"),
                self.ours("libuv + scanner", "peer", "bench-http-uv"),
                self.ours("raw epoll", "probe", "bench-http-raw")]

    def echo_servers(self):
        return [self.loom_prog("loom-echo", "loom-echo", kind="echo"),
                self.ours("libuv (guide)", "peer", "bench-echo-uv-guide", kind="echo"),
                self.ours("libuv (tuned)", "peer", "bench-echo-uv", kind="echo"),
                self.ours("libevent", "peer", "bench-echo-event", kind="echo"),
                self.ours("raw epoll", "probe", "bench-echo-raw", kind="echo")]


_usage_cache = {}


def supports(path, flag):
    """Whether `path --help` (a usage message) mentions `flag`."""
    if path not in _usage_cache:
        try:
            r = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=3,
                               stdin=subprocess.DEVNULL)
            _usage_cache[path] = r.stdout + r.stderr
        except (OSError, subprocess.TimeoutExpired):
            _usage_cache[path] = ""
    return flag in _usage_cache[path]


def loopback_args(path):
    """--bind 127.0.0.1 for loom's examples that take it: bind only loopback."""
    return ["--bind", "127.0.0.1"] if supports(path, "--bind") else []


def fill(template, port, tmpdir):
    with open(template) as f:
        text = f.read()
    text = text.replace("@PORT@", str(port)).replace("@TMP@", tmpdir)
    out = os.path.join(tmpdir, os.path.basename(template))
    with open(out, "w") as f:
        f.write(text)
    return out


class Running:
    def __init__(self, prog, proc, port):
        self.prog, self.proc, self.port = prog, proc, port

    def pids(self):
        return tree_pids(self.proc.pid)


def start_server(ctx, prog, extra_env=None):
    """Starts prog pinned to the server core and checks it answers. Returns
    (Running, None) or (None, why)."""
    if prog.missing:
        return None, prog.missing
    port = free_port()
    env = dict(prog.env)
    env.update(extra_env or {})
    p = ctx.procs.spawn(prog.argv(port), core=SERVER_CORE, env=env, name=slug(prog.name))
    if not wait_listening(port, [p]):
        why = "did not start listening: %s" % (log_tail(p) or "exit %s" % p.poll())
        ctx.procs.stop(p)
        return None, why
    why = check_echo(port) if prog.kind == "echo" else check_http(port)
    if why:
        ctx.procs.stop(p)
        return None, why
    return Running(prog, p, port), None


def slug(s):
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


# --- Results ------------------------------------------------------------------


class Results:
    def __init__(self):
        self.rows = {}  # metric -> list of row dicts, in order of first report

    def row(self, metric, program, role):
        rows = self.rows.setdefault(metric, [])
        for r in rows:
            if r["program"] == program:
                return r
        r = {"program": program, "role": role, "runs": [], "extra": [], "note": None}
        rows.append(r)
        return r

    def add(self, metric, prog_name, role, value, extra=None):
        r = self.row(metric, prog_name, role)
        r["runs"].append(value)
        if extra:
            r["extra"].append(extra)

    def na(self, metric, prog_name, role, why):
        r = self.row(metric, prog_name, role)
        if not r["note"]:
            r["note"] = why

    def probe(self, metric):
        """The limit probe's figure for a metric; the backend figures are
        compared with the probe of the matching main workload."""
        rows = self.rows.get(PROBE_FROM.get(metric, metric), [])
        return next((r["value"] for r in rows if r["role"] == "probe" and r.get("value")), None)

    def finish(self):
        for rows in self.rows.values():
            for r in rows:
                r["value"] = statistics.median(r["runs"]) if r["runs"] else None
        for metric, rows in self.rows.items():
            loom = next((r["value"] for r in rows if r["role"] == "loom"), None)
            probe = self.probe(metric)
            for r in rows:
                v = r["value"]
                r["loom_over_peer"] = (loom / v if loom is not None and v and r["role"] != "loom"
                                       else None)
                r["of_probe"] = (v / probe if v is not None and probe else None)


def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def table(results):
    lines = []
    head = "%-22s %-24s %12s  %-12s %9s %8s  %s" % (
        "workload", "program", "figure", "unit", "loom/peer", "of probe", "runs / note")
    lines.append(head)
    lines.append("-" * len(head))
    for metric, rows in results.rows.items():
        title, unit, higher = METRICS[metric]
        lines.append("# %s (%s, %s is better)" % (title, unit, "higher" if higher else "lower"))
        for r in rows:
            ratio = "%.2f" % r["loom_over_peer"] if r["loom_over_peer"] is not None else "-"
            frac = "%.0f%%" % (100 * r["of_probe"]) if r["of_probe"] is not None else "-"
            name = r["program"] + (" [probe]" if r["role"] == "probe" else "")
            if r["value"] is None:
                note = r["note"] or "no successful run"
            else:
                note = " ".join(fmt(x) for x in r["runs"]) if len(r["runs"]) > 1 else ""
                if r["note"]:
                    note = (note + "; " if note else "") + r["note"]
            lines.append("%-22s %-24s %12s  %-12s %9s %8s  %s" % (
                metric, name, fmt(r["value"]), unit, ratio, frac, note))
    return "\n".join(lines)


def markdown(results):
    out = ["| workload | program | figure | unit | loom/peer | of probe |",
           "|---|---|---:|---|---:|---:|"]
    for metric, rows in results.rows.items():
        title, unit, higher = METRICS[metric]
        for r in rows:
            ratio = "%.2f" % r["loom_over_peer"] if r["loom_over_peer"] is not None else "-"
            frac = "%.0f%%" % (100 * r["of_probe"]) if r["of_probe"] is not None else "-"
            name = r["program"] + (" (limit probe)" if r["role"] == "probe" else "")
            fig = fmt(r["value"]) if r["value"] is not None else "n/a"
            first = r is rows[0]
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                "**%s**" % title if first else "", name, fig,
                (unit + ("" if higher else ", lower is better")) if first else "", ratio, frac))
    return "\n".join(out)


# --- Plots --------------------------------------------------------------------


def gnuplot_terminal():
    """pngcairo when this gnuplot has it (gnuplot-nox may not), else png."""
    gp = shutil.which("gnuplot")
    if not gp:
        return None, None
    r = subprocess.run([gp, "-e", "set terminal pngcairo"], capture_output=True, timeout=10)
    if r.returncode == 0 and not r.stderr.strip():
        return gp, "pngcairo size 900,480 font 'sans,10'"
    return gp, "png size 900,480"


def plot(results, outdir):
    gp, term = gnuplot_terminal()
    if not gp:
        log("gnuplot not found: no plots")
        return []
    colors = {"loom": "0x1f77b4", "peer": "0xff7f0e", "probe": "0x7f7f7f"}
    made = []
    for metric, rows in results.rows.items():
        title, unit, higher = METRICS[metric]
        dat = os.path.join(outdir, metric + ".dat")
        with open(dat, "w") as f:
            for i, r in enumerate(rows):
                v = r["value"]
                label = '"%s"' % (fmt(v) if v is not None else "n/a")
                name = r["program"]
                if len(name) > 10 and " " in name:
                    name = name.replace(" ", "\\n", 1)  # two lines under the bar
                if r["role"] == "probe":
                    name += "\\n(limit probe)"
                f.write('%d "%s" %g %s %s\n' % (i, name, v if v is not None else 0,
                                                 colors[r["role"]], label))
        probe = results.probe(metric)
        png = os.path.join(outdir, metric + ".png")
        script = [
            "set terminal %s noenhanced" % term,
            "set output '%s'" % png,
            "set title \"%s\\n(%s, %s is better)\"" % (title, unit, "higher" if higher else "lower"),
            "set style fill solid 0.85 border -1",
            "set boxwidth 0.6",
            "set yrange [0:%g]" % (1.15 * max([r["value"] or 0 for r in rows] + [probe or 1e-9])),
            "set ylabel '%s'" % unit,
            "set xtics nomirror",
            "set grid ytics",
            "set key at screen 0.5, screen 0.03 center bottom horizontal samplen 1",
            "set bmargin 6",
            "set format y '%.1s%c'",
            "set offsets 0.5, 0.5, 0, 0",
        ]
        if probe:
            script.append("set arrow from graph 0, first %g to graph 1, first %g nohead "
                          "dt 2 lw 2 lc rgb '#7f7f7f' front" % (probe, probe))
            script.append("set label 'limit probe' at graph 0.01, first %g offset 0,0.7 "
                          "tc rgb '#555555'" % probe)
        script.append("plot '%s' using 1:3:4:xtic(2) with boxes lc rgb variable notitle, "
                      "'' using 1:3:5 with labels offset 0,0.8 notitle, "
                      "NaN with boxes lc rgb '#1f77b4' title 'loom', "
                      "NaN with boxes lc rgb '#ff7f0e' title 'peers', "
                      "NaN with boxes lc rgb '#7f7f7f' title 'limit probe'" % dat)
        r = subprocess.run([gp], input="\n".join(script) + "\n", text=True, capture_output=True,
                           timeout=30)
        os.unlink(dat)
        if r.returncode != 0 or not os.path.exists(png):
            log("gnuplot failed for %s: %s" % (metric, r.stderr.strip()[:300]))
        else:
            made.append(png)
    return made


# --- Workloads ----------------------------------------------------------------


def wl_timers(ctx, res):
    progs = [("loom", "loom", ctx.tool("bench-timers-loom"), "bench-timers-loom not built"),
             ("libuv", "peer", ctx.tool("bench-timers-uv"), "bench-timers-uv not built"),
             ("libev", "peer", ctx.tool("bench-timers-ev"), "bench-timers-ev not built")]
    for run in range(ctx.s["runs"]):
        for name, role, path, why in progs:
            if not path:
                res.na("timers_start_stop", name, role, why)
                res.na("timers_fire", name, role, why)
                continue
            out, err = run_cmd(ctx.procs, [path, "--timers", str(ctx.s["timers"])], SERVER_CORE,
                               120, name="timers-" + name)
            j = last_json(out)
            if err or not j:
                res.na("timers_start_stop", name, role, err or "no result")
                res.na("timers_fire", name, role, err or "no result")
                continue
            res.add("timers_start_stop", name, role, j["start_stop_ns"], j)
            res.add("timers_fire", name, role, j["fire_cpu_ns"], j)


def server_died(ctx, res, metrics, srv, running):
    """If srv has exited, records why under every metric, drops it from
    `running` and returns True."""
    code = srv.proc.poll()
    if code is None:
        return False
    why = "server exited (%s) during the run: %s" % (code, log_tail(srv.proc, 300))
    for m in metrics:
        res.row(m, srv.prog.name, srv.prog.role)["note"] = why
    running.remove(srv)
    ctx.procs.stop(srv.proc)
    return True


def wl_echo(ctx, res, progs=None, metric="echo", runs=None, secs=None, conns=100, size=64):
    """Ping-pong echo load: msg per server CPU-second, or with large
    messages (size >= 4096) MiB echoed per server CPU-second."""
    load = ctx.tool("bench-echo-load")
    progs = progs or ctx.echo_servers()
    runs = runs or ctx.s["runs"]
    secs = secs or ctx.s["echo_s"]
    running = []
    for prog in progs:
        srv, why = start_server(ctx, prog)
        if not srv:
            res.na(metric, prog.name, prog.role, why)
        else:
            res.row(metric, prog.name, prog.role)
            running.append(srv)
    try:
        for run in range(runs):
            for srv in list(running):
                if server_died(ctx, res, (metric,), srv, running):
                    continue
                if not load:
                    res.na(metric, srv.prog.name, srv.prog.role, "bench-echo-load not built")
                    continue
                argv = [load, "--port", str(srv.port), "--conns", str(conns), "--size", str(size),
                        "--duration", str(secs), "--warmup", "0.5",
                        "--pids", ",".join(map(str, srv.pids()))]
                out, err = run_cmd(ctx.procs, argv, LOAD_CORE, secs + 30, name="echo-load")
                j = last_json(out)
                if err or not j or j.get("msgs_per_cpu_s", -1) <= 0:
                    res.na(metric, srv.prog.name, srv.prog.role, err or "no result")
                    continue
                value = j["msgs_per_cpu_s"]
                if size >= 4096:
                    value = value * size / 2**20
                res.add(metric, srv.prog.name, srv.prog.role, value, j)
            for srv in list(running):
                server_died(ctx, res, (metric,), srv, running)
    finally:
        for srv in running:
            ctx.procs.stop(srv.proc)


WRK_REQ = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m)")
WRK_RPS = re.compile(r"Requests/sec:\s*([\d.]+)")


def run_wrk(ctx, port, conns, secs, script=None):
    """wrk -t1 pinned to the load core. Returns (dict, error)."""
    wrk = shutil.which("wrk")
    if not wrk:
        return None, "wrk not installed"
    argv = [wrk, "-t1", "-c%d" % conns, "-d%ds" % secs]
    if script:
        argv += ["-s", script]
    argv.append("http://127.0.0.1:%d/" % port)
    out, err = run_cmd(ctx.procs, argv, LOAD_CORE, secs + 30, name="wrk")
    if err:
        return None, err
    m, rps = WRK_REQ.search(out), WRK_RPS.search(out)
    if not m or not rps:
        return None, "cannot parse wrk output: %s" % out.strip()[-200:]
    res = {"requests": int(m.group(1)), "req_per_s": float(rps.group(1))}
    bad = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["non2xx"] = int(bad.group(1)) if bad else 0
    res["socket_errors"] = sum(map(int, errs.groups())) if errs else 0
    return res, None


def wl_http(ctx, res, progs=None, metrics=("http_plain", "http_pipelined"), runs=None,
            secs=None, env=None, pipelined_per_cpu=False):
    """Keep-alive and pipelined wrk runs. Keep-alive figures are requests per
    server CPU-second; pipelined ones requests per second (the server is
    saturated against nginx & co.), unless pipelined_per_cpu (the backends
    table, where wrk on its one core is the limit and CPU shows the cost)."""
    progs = progs or ctx.http_servers()
    runs = runs or ctx.s["runs"]
    secs = secs or ctx.s["http_s"]
    lua = os.path.join(HERE, "http", "pipeline.lua")
    running = []
    for prog in progs:
        srv, why = start_server(ctx, prog, env)
        if not srv:
            for m in metrics:
                res.na(m, prog.name, prog.role, why)
        else:
            for m in metrics:
                res.row(m, prog.name, prog.role)
            running.append(srv)
    try:
        for run in range(runs):
            for metric in metrics:
                pipelined = "pipelined" in metric
                for srv in list(running):
                    if server_died(ctx, res, metrics, srv, running):
                        continue
                    pids = srv.pids()
                    c0 = cpu_seconds(pids)
                    w, err = run_wrk(ctx, srv.port, 100, secs, lua if pipelined else None)
                    cpu = cpu_seconds(pids) - c0
                    name, role = srv.prog.name, srv.prog.role
                    if err:
                        res.na(metric, name, role, err)
                        continue
                    if srv.proc.poll() is not None:
                        continue  # reported by server_died()
                    if w["requests"] == 0 or w["non2xx"] > 0:
                        res.na(metric, name, role, "%d requests, %d non-2xx" % (
                            w["requests"], w["non2xx"]))
                        continue
                    if w["socket_errors"]:
                        res.row(metric, name, role)["note"] = "wrk saw %d socket errors" % (
                            w["socket_errors"])
                    w["server_cpu_s"] = round(cpu, 3)
                    w["req_per_cpu_s"] = w["requests"] / cpu if cpu > 0 else None
                    value = (w["req_per_s"] if pipelined and not pipelined_per_cpu
                             else w["req_per_cpu_s"])
                    if value is None:
                        res.na(metric, name, role, "server used no CPU?")
                        continue
                    res.add(metric, name, role, value, w)
            for srv in list(running):
                server_died(ctx, res, metrics, srv, running)
    finally:
        for srv in running:
            ctx.procs.stop(srv.proc)


def read_line(proc, timeout):
    """One line from proc's stdout within timeout seconds, or None."""
    end = time.time() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.time()))
        if not r:
            break
        d = os.read(fd, 4096)
        if not d:
            break
        buf += d
        if b"\n" in buf:
            return buf.split(b"\n", 1)[0].decode(errors="replace")
    return None


def wl_memory(ctx, res):
    load = ctx.tool("bench-mem-load")
    n = ctx.s["mem_conns"]
    progs = ctx.http_servers()
    for run in range(ctx.s["mem_runs"]):
        for prog in progs:
            if not load:
                res.na("memory", prog.name, prog.role, "bench-mem-load not built")
                continue
            # A fresh server each run: freed memory stays in the process, so
            # a second ramp on the same one would measure nothing.
            srv, why = start_server(ctx, prog)
            if not srv:
                res.na("memory", prog.name, prog.role, why)
                continue
            try:
                time.sleep(0.3)
                before = rss_bytes(srv.pids())
                p = ctx.procs.spawn([load, "--port", str(srv.port), "--conns", str(n),
                                     "--timeout", "30", "--src-net", str(1 + run % 50)],
                                    core=LOAD_CORE, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    name="mem-load")
                line = read_line(p, 40)
                j = None
                if line:
                    try:
                        j = json.loads(line)
                    except ValueError:
                        pass
                if not j:
                    res.na("memory", prog.name, prog.role, "load failed: %s" % log_tail(p))
                    ctx.procs.stop(p)
                    continue
                time.sleep(0.5)
                after = rss_bytes(srv.pids())
                p.stdin.close()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    pass
                ctx.procs.stop(p)
                if j["ok"] < 0.95 * n:
                    res.na("memory", prog.name, prog.role,
                           "only %d of %d connections held" % (j["ok"], n))
                    continue
                j.update(rss_before=before, rss_after=after)
                res.add("memory", prog.name, prog.role, (after - before) / j["ok"], j)
            finally:
                ctx.procs.stop(srv.proc)


def start_delay_servers(ctx, prog_argv, env, nprocs):
    """Starts nprocs server processes sharing one port with --reuseport; if
    the program does not take --reuseport, one process without it."""
    port = free_port()
    if nprocs > 1:
        ps = [ctx.procs.spawn(prog_argv(port) + ["--reuseport"], core=SERVER_CORE, env=env,
                              name="delay-server") for _ in range(nprocs)]
        time.sleep(0.3)
        alive = [p for p in ps if p.poll() is None]
        if alive and wait_listening(port, alive[:1]) and len(alive) == nprocs:
            return ps, port, None
        for p in ps:
            ctx.procs.stop(p)
        port = free_port()
    p = ctx.procs.spawn(prog_argv(port), core=SERVER_CORE, env=env, name="delay-server")
    if not wait_listening(port, [p]):
        why = log_tail(p) or "exit %s" % p.poll()
        ctx.procs.stop(p)
        return None, port, "did not start listening: %s" % why
    return [p], port, None


def wl_concurrency(ctx, res):
    s = ctx.s
    load = ctx.tool("bench-churn-load")
    delay = s["conc_delay"]
    progs = []
    exe = ctx.loom("loom-delay-server")
    if exe:
        extra = loopback_args(exe) + (["--quiet"] if supports(exe, "--quiet") else [])
        progs.append(("loom-delay-server", "loom",
                      lambda port, e=exe: [e, "--port", str(port), "--delay", str(delay)] + extra))
    else:
        for m in ("conc_peak", "conc_rate", "conc_rss"):
            res.na(m, "loom-delay-server", "loom", "loom-delay-server not built yet")
    raw = ctx.tool("bench-http-raw")
    if raw:
        progs.append(("raw epoll", "probe",
                      lambda port: [raw, "--port", str(port), "--delay", str(delay)]))
    for run in range(s["conc_runs"]):
        for name, role, argv in progs:
            if not load:
                res.na("conc_peak", name, role, "bench-churn-load not built")
                continue
            servers, port, why = start_delay_servers(ctx, argv, {}, s["conc_procs"])
            if not servers:
                for m in ("conc_peak", "conc_rate", "conc_rss"):
                    res.na(m, name, role, why)
                continue
            try:
                one_concurrency_run(ctx, res, name, role, servers, port, load)
            finally:
                for p in servers:
                    ctx.procs.stop(p)


def one_concurrency_run(ctx, res, name, role, servers, port, load):
    s = ctx.s
    nloads = len(servers)  # one load process per server process: fds match
    pids = [q for p in servers for q in tree_pids(p.pid)]
    fd0, rss0 = fd_count(pids), rss_bytes(pids)
    loads = [ctx.procs.spawn([load, "--port", str(port), "--max", str(s["conc_max"]),
                              "--duration", str(s["conc_s"]), "--src-net", str(100 + i)],
                             core=LOAD_CORE, stdout=subprocess.PIPE, name="churn-load")
             for i in range(nloads)]
    peak_fd, peak_rss = 0, rss0
    while any(p.poll() is None for p in loads):
        fds = fd_count(pids) - fd0
        if fds > peak_fd:
            peak_fd = fds
            peak_rss = max(peak_rss, rss_bytes(pids))
        time.sleep(0.2)
    outs = []
    for p in loads:
        out = p.stdout.read().decode(errors="replace")
        ctx.procs.stop(p)
        j = last_json(out)
        if j:
            outs.append(j)
    alive = sum(1 for p in servers if p.poll() is None)
    if len(outs) != nloads or alive != len(servers):
        why = "%d of %d loads reported, %d of %d servers alive" % (
            len(outs), nloads, alive, len(servers))
        for m in ("conc_peak", "conc_rate", "conc_rss"):
            res.na(m, name, role, why)
        return
    client_peak = sum(j["peak_open"] for j in outs)
    ramp = max(j["ramp_s"] for j in outs) or 1e-3
    extra = {"server_procs": len(servers), "load_procs": nloads, "server_peak_fds": peak_fd,
             "client_peak_open": client_peak, "ramp_s": ramp,
             "opened": sum(j["opened"] for j in outs),
             "completed": sum(j["completed"] for j in outs),
             "failed": sum(j["failed"] for j in outs),
             "rss_base": rss0, "rss_peak": peak_rss,
             "bytes_per_conn": (peak_rss - rss0) / peak_fd if peak_fd else None}
    res.add("conc_peak", name, role, peak_fd, extra)
    res.add("conc_rate", name, role, client_peak / ramp, extra)
    res.add("conc_rss", name, role, peak_rss / 1048576, extra)
    for m in ("conc_peak", "conc_rate", "conc_rss"):
        res.row(m, name, role)["note"] = "%d server process%s" % (
            len(servers), "es" if len(servers) > 1 else "")


FETCH_RPS = [re.compile(r'"req_per_s"\s*:\s*([\d.]+)'),
             re.compile(r"(?:req/s|requests/sec|rps)\s*[:=]?\s*([\d][\d,.]*)", re.I),
             re.compile(r"([\d][\d,.]*)\s*(?:req/s|requests/s|requests/sec|rps)", re.I)]


def parse_rps(text):
    for rx in FETCH_RPS:
        m = rx.search(text)
        if m:
            try:
                return float(m.group(1).replace(",", ""))
            except ValueError:
                pass
    return None


def wl_http_client(ctx, res):
    s = ctx.s
    ng = ctx.nginx()
    fetch = ctx.loom("loom-fetch")
    curl = ctx.tool("bench-curl-multi")
    srv, why = start_server(ctx, ng)
    names = [("loom-fetch", "loom"), ("libcurl multi", "peer"), ("wrk -c64", "probe")]
    if not srv:
        for n, role in names:
            res.na("http_client", n, role, "nginx: %s" % why)
        return
    url = "http://127.0.0.1:%d/" % srv.port
    m = str(s["client_requests"])
    try:
        for run in range(s["runs"]):
            if fetch:
                out, err = run_cmd(ctx.procs, [fetch, "--parallel", "64", "--requests", m, url],
                                   LOAD_CORE, 120, name="loom-fetch")
                rps = parse_rps(out) if not err else None
                if rps:
                    res.add("http_client", "loom-fetch", "loom", rps,
                            {"output": out.strip().splitlines()[-1][:300]})
                else:
                    res.na("http_client", "loom-fetch", "loom",
                           err or "no req/s in output: %s" % out.strip()[-120:])
            else:
                res.na("http_client", "loom-fetch", "loom", "loom-fetch not built yet")
            if curl:
                out, err = run_cmd(ctx.procs, [curl, "--parallel", "64", "--requests", m, url],
                                   LOAD_CORE, 120, name="curl-multi")
                j = last_json(out)
                if j and not err:
                    res.add("http_client", "libcurl multi", "peer", j["req_per_s"], j)
                else:
                    res.na("http_client", "libcurl multi", "peer", err or "no result")
            else:
                res.na("http_client", "libcurl multi", "peer", "bench-curl-multi not built")
            w, err = run_wrk(ctx, srv.port, 64, s["client_wrk_s"])
            if w:
                res.add("http_client", "wrk -c64", "probe", w["req_per_s"], w)
            else:
                res.na("http_client", "wrk -c64", "probe", err)
    finally:
        ctx.procs.stop(srv.proc)


def backend_names(ctx):
    names = list(BACKENDS)
    for so in glob.glob(os.path.join(ctx.build, "src", "libloom-backend-*.so")):
        n = os.path.basename(so)[len("libloom-backend-"):-3]
        if n not in names:
            names.append(n)
    return names


SKIPPED = []  # backends whose server did not start


def wl_backends(ctx, res):
    """loom-echo and loom-hello on every backend, side by side (io_uring
    twice: with multishot recv, and reading on readiness). A backend whose
    server fails to start is skipped."""
    s = ctx.s
    hello, echo = ctx.loom("loom-hello"), ctx.loom("loom-echo")
    if not hello and not echo:
        for m in ("backend_echo", "backend_bulk", "backend_http_plain", "backend_http_pipelined"):
            res.na(m, "loom", "loom", "loom-hello and loom-echo not built yet")
        return
    variants = []
    for b in backend_names(ctx):
        variants.append((b, {"LOOM_BACKEND": b}))
        if b == "io_uring":
            # The same backend reading on readiness instead of multishot recv.
            variants.append(("io_uring-norecv", {"LOOM_BACKEND": b, "LOOM_IO_URING_RECV": "0"}))
    echo_progs, hello_progs = [], []
    for b, env in variants:
        label = "loom [%s]" % b
        if echo:
            prog = Program(label, "loom",
                           lambda port: [echo, "--port", str(port)] + loopback_args(echo),
                           env=env, kind="echo")
            srv, why = start_server(ctx, prog)
            if srv:
                ctx.procs.stop(srv.proc)
                echo_progs.append(prog)
            else:
                SKIPPED.append("loom-echo on %s: %s" % (b, why[:160]))
        if hello:
            prog = Program(label, "loom",
                           lambda port: [hello, "--port", str(port)] + loopback_args(hello),
                           env=env)
            srv, why = start_server(ctx, prog)
            if srv:
                ctx.procs.stop(srv.proc)
                hello_progs.append(prog)
            else:
                SKIPPED.append("loom-hello on %s: %s" % (b, why[:160]))
    # Every backend in each round, side by side, for the usual number of
    # rounds: the medians are compared.
    if echo_progs:
        wl_echo(ctx, res, echo_progs, "backend_echo", None, s["backend_s"])
        # Bulk: 64 KiB messages, where reading is most of the work.
        wl_echo(ctx, res, echo_progs, "backend_bulk", None, s["backend_s"], conns=10,
                size=65536)
    if hello_progs:
        wl_http(ctx, res, hello_progs, ("backend_http_plain", "backend_http_pipelined"), None,
                s["backend_s"], pipelined_per_cpu=True)


def wl_tls(ctx, res):
    import tls_bench  # bench/tls_bench.py: the TLS workloads
    tls_bench.wl_tls(sys.modules[__name__], ctx, res)


def wl_h2_client(ctx, res):
    import h2_client_bench  # bench/h2_client_bench.py: the HTTP/2 client workload
    h2_client_bench.wl_h2_client(sys.modules[__name__], ctx, res)


def wl_ws(ctx, res):
    import ws_bench  # bench/ws_bench.py: the WebSocket workloads
    ws_bench.wl_ws(sys.modules[__name__], ctx, res)


def wl_udp(ctx, res):
    import udp_bench  # bench/udp_bench.py: the UDP workloads
    udp_bench.wl_udp(sys.modules[__name__], ctx, res)


def wl_proc(ctx, res):
    """Child processes (issue 15): loom_spawn vs uv_spawn. The program runs
    pinned to the server core; the pipe's writer child pins itself to the
    load core (BENCH_WRITER_CORE). Runs alternate between the programs."""
    spawns = 500 if ctx.quick else 2000
    pipe_bytes = (256 if ctx.quick else 1024) << 20
    progs = [("loom", "loom", ctx.tool("bench-proc-loom"), "bench-proc-loom not built"),
             ("libuv", "peer", ctx.tool("bench-proc-uv"), "bench-proc-uv not built")]
    env = {"BENCH_WRITER_CORE": str(LOAD_CORE)}
    for run in range(ctx.s["runs"]):
        for name, role, path, why in progs:
            if not path:
                for m in ("proc_spawn", "proc_pipe", "proc_pipe_total"):
                    res.na(m, name, role, why)
                continue
            out, err = run_cmd(ctx.procs, [path, "--spawn", str(spawns)], SERVER_CORE, 300,
                               name="proc-spawn-" + name)
            j = last_json(out)
            if err or not j:
                res.na("proc_spawn", name, role, err or "no result")
            else:
                res.add("proc_spawn", name, role, j["spawns_per_s"], j)
            out, err = run_cmd(ctx.procs, [path, "--pipe", str(pipe_bytes)], SERVER_CORE, 300,
                               env=env, name="proc-pipe-" + name)
            j = last_json(out)
            if err or not j:
                res.na("proc_pipe", name, role, err or "no result")
                res.na("proc_pipe_total", name, role, err or "no result")
            else:
                res.add("proc_pipe", name, role, j["mib_per_cpu_s"], j)
                res.add("proc_pipe_total", name, role, j["mib_per_total_cpu_s"], j)


def wl_h2(ctx, res):
    import h2_bench  # bench/h2/h2_bench.py: the HTTP/2 server workloads
    h2_bench.wl_h2(sys.modules[__name__], ctx, res)


WORKLOADS = [("timers", wl_timers), ("echo", wl_echo), ("http", wl_http),
             ("memory", wl_memory), ("concurrency", wl_concurrency),
             ("http-client", wl_http_client), ("backends", wl_backends), ("tls", wl_tls),
             ("ws", wl_ws), ("udp", wl_udp), ("proc", wl_proc), ("h2", wl_h2)]
WORKLOADS.append(("h2-client", wl_h2_client))


# --- Main ---------------------------------------------------------------------


def versions():
    pkgs = ["nginx-light", "h2o", "wrk", "libuv1-dev", "libevent-dev", "libev-dev",
            "libcurl4-openssl-dev", "gnuplot-nox", "libwebsockets-dev", "nodejs"]
    out = {}
    for p in pkgs:
        try:
            r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True,
                               text=True, timeout=10)
            out[p] = r.stdout.strip() if r.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired):
            out[p] = None
    return out


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "kernel": os.uname().release,
            "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}


SERVER_CORE, LOAD_CORE, CORES = None, None, False


def main():
    global SERVER_CORE, LOAD_CORE, CORES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one short run of each workload")
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""),
                    help="comma-separated workloads: " + ",".join(w for w, _ in WORKLOADS))
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--docs", action="store_true",
                    help="also copy the JSON and plots to docs/bench/ and the table into "
                         "docs/BENCHMARKS.md")
    ap.add_argument("--render", metavar="JSON",
                    help="run nothing: redo the table, plots (and with --docs the docs) from a "
                         "saved latest.json")
    args = ap.parse_args()

    if args.render:
        with open(args.render) as f:
            doc = json.load(f)
        res = Results()
        res.rows = {m: v["rows"] for m, v in doc["metrics"].items()}
        SKIPPED.extend(doc["meta"].get("skipped_backends", []))
        emit(doc, res, args)
        return 0

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ncpu = len(os.sched_getaffinity(0))
    if shutil.which("taskset") and ncpu >= 2:
        cpus = sorted(os.sched_getaffinity(0))
        SERVER_CORE = int(os.environ.get("BENCH_SERVER_CORE", cpus[0]))
        LOAD_CORE = int(os.environ.get("BENCH_LOAD_CORE", cpus[1]))
        CORES = True
        # The harness's own work (sampling /proc, parsing) belongs on the
        # load side, never on the server's core.
        os.sched_setaffinity(0, {LOAD_CORE})
    else:
        log("warning: fewer than 2 CPUs or no taskset: nothing is pinned")

    ctx = Ctx(args)
    if not os.path.isdir(ctx.bin):
        log("error: %s does not exist: build first (make build, or cmake --build <dir>)" % ctx.bin)
        return 2
    only = [w for w in args.only.split(",") if w]
    unknown = [w for w in only if w not in dict(WORKLOADS)]
    if unknown:
        log("error: unknown workload(s) %s" % ",".join(unknown))
        return 2

    def on_signal(sig, frame):
        ctx.procs.stop_all()
        sys.exit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    res = Results()
    started = time.time()
    load_before = os.getloadavg()
    timings = {}
    try:
        for name, fn in WORKLOADS:
            if only and name not in only:
                continue
            t0 = time.time()
            log("== %s" % name)
            fn(ctx, res)
            timings[name] = round(time.time() - t0, 1)
            log("   %s took %.0f s" % (name, timings[name]))
    finally:
        ctx.procs.stop_all()
    res.finish()
    elapsed = time.time() - started

    doc = {
        "meta": {"date": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(started)),
                 "quick": args.quick, "settings": ctx.s, "seconds": round(elapsed, 1),
                 "workload_seconds": timings,
                 # Other work on the machine disturbs the figures; this says how much there was.
                 "loadavg_before": [round(x, 2) for x in load_before],
                 "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                 "pinning": {"server_core": SERVER_CORE, "load_core": LOAD_CORE}
                 if CORES else None,
                 "machine": machine(), "versions": versions(),
                 "build_dir": ctx.build, "skipped_backends": SKIPPED},
        "metrics": {m: {"title": METRICS[m][0], "unit": METRICS[m][1],
                        "higher_is_better": METRICS[m][2], "rows": rows}
                    for m, rows in res.rows.items()},
    }
    emit(doc, res, args)
    shutil.rmtree(ctx.tmp, ignore_errors=True)
    return 0


def emit(doc, res, args):
    """Writes latest.json, latest.txt and the plots, prints the table, and
    with --docs updates docs/."""
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, "latest.json")
    if os.path.abspath(jpath) != os.path.abspath(args.render or ""):
        with open(jpath, "w") as f:
            json.dump(doc, f, indent=1)
    pngs = plot(res, args.out)
    text = table(res)
    if SKIPPED:
        text += "\nbackends skipped (server did not start):\n" + "\n".join(
            "  " + x for x in SKIPPED)
    with open(os.path.join(args.out, "latest.txt"), "w") as f:
        f.write(text + "\n")
    print(text)
    meta = doc["meta"]
    print("\n%s run of %s, %.0f s; results in %s (+ %d plots)" % (
        "quick" if meta["quick"] else "full", meta["date"], meta["seconds"],
        os.path.relpath(jpath), len(pngs)))
    if args.docs:
        update_docs(doc, res, pngs)


def update_docs(doc, res, pngs):
    d = os.path.join(ROOT, "docs", "bench")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
    for p in pngs:
        shutil.copy(p, d)
    md = os.path.join(ROOT, "docs", "BENCHMARKS.md")
    if not os.path.exists(md):
        return
    with open(md) as f:
        text = f.read()
    begin, end = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"
    if begin not in text or end not in text:
        return
    meta = doc["meta"]
    vers = ", ".join("%s %s" % (k, v) for k, v in meta["versions"].items() if v)
    load = ""
    if meta.get("loadavg_before"):
        load = " Load average (1, 5, 15 min) %s before, %s after." % (
            " ".join("%.2f" % x for x in meta["loadavg_before"]),
            " ".join("%.2f" % x for x in meta["loadavg_after"]))
    block = "%s\n%s run of %s on %s (%s CPUs, kernel %s), %.0f s.%s\nPeers: %s.\n\n%s\n\n%s\n%s" % (
        begin, "Quick" if meta["quick"] else "Full", meta["date"], meta["machine"]["cpu"],
        meta["machine"]["cpus"], meta["machine"]["kernel"], meta["seconds"], load, vers,
        markdown(res),
        "\n".join("![%s](bench/%s)" % (os.path.basename(p)[:-4], os.path.basename(p))
                  for p in pngs), end)
    text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    with open(md, "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
