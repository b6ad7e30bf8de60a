"""bench/udp_bench.py - the UDP workloads of `make bench` (bench/harness.py
imports it; run alone with `bash bench/run.sh --only udp`).

Side by side in one run, each server pinned to the server core and the load
on the other:

  udp_echo   64 B datagrams, 100 concurrent flows (connected sockets, 1 in
             flight each: ping-pong, bench-udp-load): datagrams echoed per server
             CPU-second. loom-udp-echo on the epoll backend and on io_uring
             (--backend; the first is the loom row the ratios use), libuv
             (uv_udp with UV_UDP_RECVMMSG, bench-udp-uv), the raw
             recvmmsg/sendmmsg probe (bench-udp-raw, the "of probe" base) and
             the io_uring probe (bench-udp-uring: multishot recvmsg with
             provided buffers, sendmsg SQEs submitted by the call that waits:
             one system call per wakeup), which says what an io_uring-native
             UDP path could reach at best.
  udp_bulk   200,000 datagrams of 1,400 B from one socket to a draining sink
             (bench-udp-load --sink on the load core): MiB per sender
             CPU-second. loom with UDP GSO, loom without, libuv.
"""
import os
import socket
import time

METRICS = {
    "udp_echo": ("udp: echo 64 B, 100 flows", "dgram/CPU-s", True),
    "udp_bulk": ("udp: bulk send 1,400 B datagrams", "MiB/CPU-s", True),
}


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def udp_answers(port, proc, timeout=5.0):
    """True once a datagram to 127.0.0.1:port comes back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.2)
    end = time.time() + timeout
    try:
        while time.time() < end:
            if proc.poll() is not None:
                return False
            try:
                s.sendto(b"x" * 64, ("127.0.0.1", port))
                data, _ = s.recvfrom(2048)
                if data == b"x" * 64:
                    return True
            except OSError:
                time.sleep(0.05)
    finally:
        s.close()
    return False


def echo_servers(h, ctx):
    """(name, role, argv(port) or None, why missing, backend the server must report)."""
    out = []
    loom = ctx.loom("loom-udp-echo")
    for backend in ("epoll", "io_uring"):
        out.append(("loom-udp-echo (%s)" % backend, "loom",
                    (lambda port, b=backend: [loom, "--port", str(port), "--bind", "127.0.0.1",
                                              "--backend", b]) if loom else None,
                    "loom-udp-echo not built", backend))
    uv = ctx.tool("bench-udp-uv")
    out.append(("libuv (recvmmsg)", "peer",
                (lambda port: [uv, "--port", str(port)]) if uv else None,
                "bench-udp-uv not built (libuv missing?)", None))
    raw = ctx.tool("bench-udp-raw")
    out.append(("raw recvmmsg/sendmmsg", "probe",
                (lambda port: [raw, "--port", str(port)]) if raw else None,
                "bench-udp-raw not built", None))
    ur = ctx.tool("bench-udp-uring")
    out.append(("raw io_uring", "probe",
                (lambda port: [ur, "--port", str(port)]) if ur else None,
                "bench-udp-uring not built (liburing missing?)", None))
    return out


def wl_udp_echo(h, ctx, res):
    load = ctx.tool("bench-udp-load")
    secs = ctx.s["echo_s"]
    running = []
    for name, role, argv, why, backend in echo_servers(h, ctx):
        if not argv or not load:
            res.na("udp_echo", name, role, why if not argv else "bench-udp-load not built")
            continue
        port = free_udp_port()
        p = ctx.procs.spawn(argv(port), core=h.SERVER_CORE, name=h.slug(name))
        if not udp_answers(port, p):
            res.na("udp_echo", name, role, "no echo: %s" % (h.log_tail(p) or p.poll()))
            ctx.procs.stop(p)
            continue
        # loom-udp-echo names the backend it runs on ("listening on port P
        # (io_uring)"); a kernel without io_uring falls back to epoll.
        if backend and "(%s)" % backend not in h.log_tail(p, 2000):
            res.na("udp_echo", name, role, "not on %s: %s" % (backend, h.log_tail(p)))
            ctx.procs.stop(p)
            continue
        res.row("udp_echo", name, role)
        running.append((name, role, p, port))
    try:
        for run in range(ctx.s["runs"]):
            for name, role, p, port in running:
                if p.poll() is not None:
                    res.na("udp_echo", name, role, "server exited: %s" % h.log_tail(p))
                    continue
                argv = [load, "--port", str(port), "--flows", "100", "--window", "1",
                        "--size", "64", "--duration", str(secs), "--warmup", "0.5",
                        "--pids", ",".join(map(str, h.tree_pids(p.pid)))]
                out, err = h.run_cmd(ctx.procs, argv, h.LOAD_CORE, secs + 30, name="udp-load")
                j = h.last_json(out)
                if err or not j or j.get("msgs_per_cpu_s", -1) <= 0:
                    res.na("udp_echo", name, role, err or "no result")
                    continue
                res.add("udp_echo", name, role, j["msgs_per_cpu_s"], j)
    finally:
        for _, _, p, _ in running:
            ctx.procs.stop(p)


def wl_udp_bulk(h, ctx, res):
    load = ctx.tool("bench-udp-load")
    loom = ctx.tool("bench-udp-bulk")
    uv = ctx.tool("bench-udp-uv")
    count = "50000" if ctx.quick else "200000"
    senders = [
        ("loom (GSO)", "loom", [loom, "--count", count, "--size", "1400"] if loom else None,
         "bench-udp-bulk not built"),
        ("loom (no GSO)", "peer", [loom, "--count", count, "--size", "1400", "--no-gso"]
         if loom else None, "bench-udp-bulk not built"),
        ("libuv", "peer", [uv, "--bulk", "--count", count, "--size", "1400"] if uv else None,
         "bench-udp-uv not built (libuv missing?)"),
    ]
    if not load:
        for name, role, _, _ in senders:
            res.na("udp_bulk", name, role, "bench-udp-load not built")
        return
    port = free_udp_port()
    sink = ctx.procs.spawn([load, "--sink", "--port", str(port)], core=h.LOAD_CORE,
                           name="udp-sink")
    time.sleep(0.3)
    try:
        for name, role, argv, why in senders:
            if not argv:
                res.na("udp_bulk", name, role, why)
            else:
                res.row("udp_bulk", name, role)
        for run in range(ctx.s["runs"]):
            for name, role, argv, why in senders:
                if not argv:
                    continue
                out, err = h.run_cmd(ctx.procs, argv + ["--to", str(port)], h.SERVER_CORE, 60,
                                     name="udp-bulk")
                j = h.last_json(out)
                if err or not j or j.get("mib_per_cpu_s", -1) <= 0:
                    res.na("udp_bulk", name, role, err or "no result")
                    continue
                res.add("udp_bulk", name, role, j["mib_per_cpu_s"], j)
    finally:
        ctx.procs.stop(sink)


def wl_udp(h, ctx, res):
    wl_udp_echo(h, ctx, res)
    wl_udp_bulk(h, ctx, res)
