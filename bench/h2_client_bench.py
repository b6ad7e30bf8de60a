"""bench/h2_client_bench.py - the HTTP/2 client workload of `make bench`
(bench/harness.py imports it; run alone with `bash bench/run.sh --only h2-client`).

  h2_client   100 streams on ONE connection to nginx (`ssl http2`, one worker,
              the TLS benchmarks' certificate, cipher and OpenSSL config),
              small GETs: loom-fetch --http2 --parallel 100 against libcurl
              multi with HTTP/2 multiplexing (bench-curl-multi --http2:
              CURLPIPE_MULTIPLEX, CURL_HTTP_VERSION_2TLS, PIPEWAIT, one
              connection per host). Requests per second; the server pinned to
              the server core, the client to the load core. Goal: loom >= 2x
              libcurl.
"""
import tls_bench

METRICS = {
    "h2_client": ("h2: client, 100 streams on one connection, nginx", "req/s", True),
}

def wl_h2_client(h, ctx, res):
    st = tls_bench.Setup(h, ctx)
    names = [("loom-fetch", "loom"), ("libcurl multi", "peer")]
    ng = [x for x in st.servers() if x[0] == "nginx"][0]
    if st.error or not ng[2]:
        for n, role in names:
            res.na("h2_client", n, role, st.error or ng[3])
        return
    ngx = ng[2]

    def ngx_h2(port):
        argv = ngx(port)
        conf = argv[argv.index("-c") + 1]
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("ssl backlog=4096;",
                                 "ssl http2 backlog=4096;\n        "
                                 "http2_max_concurrent_streams 128;"))
        return argv

    srv, why = st.start("nginx", ngx_h2)
    if not srv:
        for n, role in names:
            res.na("h2_client", n, role, "nginx: %s" % why)
        return
    fetch = ctx.loom("loom-fetch")
    curl = ctx.tool("bench-curl-multi")
    url = "https://localhost:%d/" % srv.port
    m = str(ctx.s["client_requests"] // 2)
    try:
        for run in range(ctx.s["runs"]):
            if fetch and h.supports(fetch, "--http2"):
                out, err = h.run_cmd(ctx.procs, [fetch, "--http2", "--cacert", st.cert,
                                                  "--parallel", "100", "--requests", m, url],
                                     h.LOAD_CORE, 120, env=st.env, name="loom-fetch-h2")
                rps = h.parse_rps(out) if not err else None
                line = out.strip().splitlines()[-1] if out.strip() else ""
                if rps and "connections: 1," in line and "HTTP/2" in line:
                    res.add("h2_client", "loom-fetch", "loom", rps, {"output": line[:300]})
                else:
                    res.na("h2_client", "loom-fetch", "loom",
                           err or "not one h2 connection or no req/s: %s" % line[-160:])
            else:
                res.na("h2_client", "loom-fetch", "loom", "loom-fetch has no --http2")
            if curl and h.supports(curl, "--http2"):
                out, err = h.run_cmd(ctx.procs, [curl, "--http2", "--cacert", st.cert,
                                                 "--parallel", "100", "--requests", m, url],
                                     h.LOAD_CORE, 120, env=st.env, name="curl-multi-h2")
                j = h.last_json(out)
                if j and not err:
                    res.add("h2_client", "libcurl multi", "peer", j["req_per_s"], j)
                else:
                    res.na("h2_client", "libcurl multi", "peer", err or "no result")
            else:
                res.na("h2_client", "libcurl multi", "peer", "bench-curl-multi has no --http2")
    finally:
        ctx.procs.stop(srv.proc)
