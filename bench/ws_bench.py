"""bench/ws_bench.py - the WebSocket workloads of `make bench` (bench/harness.py
imports it; run alone with `bash bench/run.sh --only ws`). bench/ws/README.md
has the protocol every server speaks and what each workload does.

Side by side in one run, server pinned to the server core and the load
(bench-ws-load, the same C program for every server) to the other, each
figure the median of the runs:

  ws_echo           100 connections, 64 B binary ping-pong: messages per server CPU-second
  ws_deflate        16 KiB text echo with permessage-deflate: MiB per server CPU-second
  ws_bcast_cpu      one 64 B message to 10,000 subscribers: server CPU ms per broadcast
  ws_bcast_latency  the same: ms until the last subscriber has it (the median broadcast)
  ws_idle           server RSS growth per idle connection (handshake + one message)
  ws_idle_deflate   the same with permessage-deflate negotiated

Servers: loom (bench-ws-loom: loom-ws-echo's echo plus the bench protocol's
subscribe/broadcast on loom's topics; loom-ws-echo itself when that is not
built, for the echo workloads only), libwebsockets (bench-ws-lws), node ws
(bench/peers/ws_node.js; `npm install ws` into <build>/bench/ws-node on first
use), the raw epoll limit probe (bench-ws-raw, no compression) and the io_uring
limit probes (bench-ws-raw-uring: multishot recv, sends as SQEs batched into the
io_uring_enter that waits; once as a library would use it, once with registered
files and no completion for a successful send, the lower bound). loom runs
twice: on its default backend and with LOOM_BACKEND=io_uring.
"""
import os
import shutil
import subprocess

METRICS = {
    "ws_echo": ("ws: echo, 100 conns, 64 B binary ping-pong", "msg/CPU-s", True),
    "ws_deflate": ("ws: echo 16 KiB text, permessage-deflate", "MiB/CPU-s", True),
    "ws_bcast_cpu": ("ws: broadcast 64 B to 10,000 subscribers", "CPU ms/bcast", False),
    "ws_bcast_latency": ("ws: broadcast to 10,000, until the last has it", "ms", False),
    "ws_idle": ("ws: idle conns after handshake + 1 message", "B/conn", False),
    "ws_idle_deflate": ("ws: idle conns, permessage-deflate", "B/conn", False),
}

# libwebsockets 4.1.6 (Debian 12) fails inflating with several concurrent
# permessage-deflate connections ("invalid distance too far back", the load
# generator's own stream being correct: Python's websockets and node's ws
# take it): the deflate workload uses one connection for every server.
DEFLATE_CONNS = 1
SUBSCRIBERS = 10000
IDLE_CONNS = 10000


def node_ws(h, ctx):
    """(node, NODE_PATH) or (None, why): installs ws with npm once."""
    node = shutil.which("node")
    if not node:
        return None, "node not installed"
    d = os.path.join(ctx.bin, "ws-node")
    mod = os.path.join(d, "node_modules")
    if not os.path.isdir(os.path.join(mod, "ws")):
        npm = shutil.which("npm")
        if not npm:
            return None, "npm not installed"
        os.makedirs(d, exist_ok=True)
        try:
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--silent",
                                "--prefix", d, "ws@8"], capture_output=True, text=True,
                               timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, "npm install ws failed: %s" % e
        if r.returncode != 0 or not os.path.isdir(os.path.join(mod, "ws")):
            return None, "npm install ws failed: %s" % (r.stderr or r.stdout).strip()[-160:]
    return (node, mod), None


def servers(h, ctx):
    """[(name, role, argv(port) or None, env, why, full)]: full is False for a
    server that speaks only echo (not subscribe/broadcast)."""
    out = []
    loom = ctx.tool("bench-ws-loom")
    echo = ctx.loom("loom-ws-echo")
    if loom:
        out.append(("loom", "loom", lambda port: [loom, "--port", str(port)], {}, None, True))
        # The same program on loom's io_uring backend (a kernel without
        # io_uring runs it on epoll: the row then repeats the first).
        out.append(("loom (io_uring)", "loom", lambda port: [loom, "--port", str(port)],
                    {"LOOM_BACKEND": "io_uring"}, None, True))
    elif echo:
        out.append(("loom (loom-ws-echo)", "loom",
                    lambda port: [echo, "--port", str(port)] + h.loopback_args(echo), {}, None,
                    False))
    else:
        out.append(("loom", "loom", None, {}, "bench-ws-loom / loom-ws-echo not built", True))
    lws = ctx.tool("bench-ws-lws")
    out.append(("libwebsockets", "peer", (lambda port: [lws, "--port", str(port)]) if lws else None,
                {}, None if lws else "bench-ws-lws not built (libwebsockets-dev missing?)", True))
    nw, why = node_ws(h, ctx)
    script = os.path.join(h.HERE, "peers", "ws_node.js")
    if nw:
        out.append(("node ws", "peer", lambda port: [nw[0], script, "--port", str(port)],
                    {"NODE_PATH": nw[1]}, None, True))
    else:
        out.append(("node ws", "peer", None, {}, why, True))
    raw = ctx.tool("bench-ws-raw")
    out.append(("raw epoll", "probe", (lambda port: [raw, "--port", str(port)]) if raw else None,
                {}, None if raw else "bench-ws-raw not built", True))
    # probe_uring: the best case of an io_uring design (bench/peers/ws_raw_uring.c).
    # Its "of probe" column is against the epoll probe, the first probe row.
    ur = ctx.tool("bench-ws-raw-uring")
    for label, extra in (("raw io_uring", []), ("raw io_uring, fixed files, no send CQE",
                                                 ["--fixed", "--skip-cqe"])):
        out.append((label, "probe",
                    (lambda port, e=extra: [ur, "--port", str(port)] + e) if ur else None, {},
                    None if ur else "bench-ws-raw-uring not built (liburing missing?)", True))
    return out


def start(h, ctx, name, argv, env):
    port = h.free_port()
    p = ctx.procs.spawn(argv(port), core=h.SERVER_CORE, env=env, name=h.slug(name) + "-ws")
    if not h.wait_listening(port, [p]):
        why = "did not start listening: %s" % (h.log_tail(p) or "exit %s" % p.poll())
        ctx.procs.stop(p)
        return None, why
    return h.Running(h.Program(name, "ws", argv), p, port), None


def load(h, ctx, srv, args, timeout):
    """Runs bench-ws-load against srv; returns (json, error)."""
    tool = ctx.tool("bench-ws-load")
    if not tool:
        return None, "bench-ws-load not built (zlib missing?)"
    pids = ",".join(str(p) for p in srv.pids())
    out, err = h.run_cmd(ctx.procs, [tool, "--port", str(srv.port), "--pids", pids] + args,
                         h.LOAD_CORE, timeout, name="ws-load")
    j = h.last_json(out)
    if j and "error" in j:
        return None, j["error"]
    if err or not j:
        return None, err or "no result: %s" % out.strip()[-160:]
    return j, None


def wl_ws(h, ctx, res):
    s = ctx.s
    secs = s["echo_s"]
    rounds = 10 if ctx.quick else 20
    subs = 2000 if ctx.quick else SUBSCRIBERS
    idle = 2000 if ctx.quick else IDLE_CONNS
    srvs = servers(h, ctx)
    for run in range(s["runs"]):
        for name, role, argv, env, why, full in srvs:
            if not argv:
                for m in METRICS:
                    res.na(m, name, role, why)
                continue
            h.log("   ws run %d: %s" % (run + 1, name))
            srv, why = start(h, ctx, name, argv, env)
            if not srv:
                for m in METRICS:
                    res.na(m, name, role, why)
                continue
            try:
                j, err = load(h, ctx, srv, ["--mode", "echo", "--conns", "100", "--size", "64",
                                            "--duration", str(secs)], secs + 60)
                if err:
                    res.na("ws_echo", name, role, err)
                else:
                    res.add("ws_echo", name, role, j["msgs_per_cpu_s"], j)
                if role == "probe":
                    res.na("ws_deflate", name, role, "no permessage-deflate (by design)")
                else:
                    j, err = load(h, ctx, srv, ["--mode", "deflate", "--conns", str(DEFLATE_CONNS),
                                                "--duration", str(secs)], secs + 60)
                    if err:
                        res.na("ws_deflate", name, role, err)
                    else:
                        res.add("ws_deflate", name, role, j["mib_per_cpu_s"], j)
                if not full:
                    res.na("ws_bcast_cpu", name, role, "no subscribe/broadcast in this server")
                    res.na("ws_bcast_latency", name, role, "no subscribe/broadcast")
                else:
                    j, err = load(h, ctx, srv, ["--mode", "bcast", "--conns", str(subs),
                                                "--rounds", str(rounds)], 240)
                    if err:
                        res.na("ws_bcast_cpu", name, role, err)
                        res.na("ws_bcast_latency", name, role, err)
                    else:
                        res.add("ws_bcast_cpu", name, role, j["cpu_ms_per_bcast"], j)
                        res.add("ws_bcast_latency", name, role, j["latency_ms_median"], j)
            finally:
                ctx.procs.stop(srv.proc)
            # Memory on a fresh server each time (freed memory stays in a process).
            for metric, extra in (("ws_idle", []), ("ws_idle_deflate", ["--deflate"])):
                if extra and role == "probe":
                    res.na(metric, name, role, "no permessage-deflate (by design)")
                    continue
                srv, why = start(h, ctx, name, argv, env)
                if not srv:
                    res.na(metric, name, role, why)
                    continue
                try:
                    j, err = load(h, ctx, srv, ["--mode", "idle", "--conns", str(idle)] + extra,
                                  240)
                    if err:
                        res.na(metric, name, role, err)
                    else:
                        res.add(metric, name, role, j["bytes_per_conn"], j)
                finally:
                    ctx.procs.stop(srv.proc)
