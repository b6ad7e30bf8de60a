#!/usr/bin/env python3
"""End-to-end test of loom-chat (examples/chat.c) in headless Chromium.

    chat_e2e.py --binary build/examples/loom-chat [--chromium /usr/bin/chromium]
                [--tls] [--screenshot out.png] [--tmpdir DIR] [--timeout 50]

Starts loom-chat on a free port of 127.0.0.1 and Chromium with a fresh
profile, opens the chat in two pages, A over WebSocket (the page's default)
and B over long poll (forced with ?transport=poll), and checks that:
  - each page loads on its transport: A on one WebSocket and no poll at
    all, B with its long poll held open by the server (no answer until the
    poll timeout, then a re-poll);
  - A's WebSocket negotiated permessage-deflate with Chromium;
  - the live panel shows both transports' connections, pushed to A over its
    WebSocket and fetched by B from /api/stats;
  - a message typed into A (real key events) shows up in B, which was
    already open and polling, within a few seconds, and vice versa (so each
    transport both sends and receives);
  - every HTTP request (DevTools' Network events) and loom-chat's view of
    it (its --verbose log) used the expected protocol, HTTP/1.1 here, and
    the WebSocket handshake was an HTTP/1.1 GET;
  - a third long-polling page, C, closed while its poll is held: loom-chat
    hears that the client went away (on_close);
  - no page throws a JavaScript exception;
  - a screenshot of both pages side by side can be taken (--screenshot);
  - SIGINT makes loom-chat answer the held polls and close the WebSocket
    ("server stopped" in both pages) and exit with status 0 (under ASan:
    without leaks).

With --tls, loom-chat serves HTTPS with a fresh test certificate
(tests/tls/mkcerts.sh; Chromium trusts the test CA by its SPKI hash,
--ignore-certificate-errors-spki-list) and the same run also checks, from
DevTools' Network events and loom-chat's access log, that:
  - the pages, their assets, the long polls, the POSTs and /api/stats all
    went over HTTP/2 (response.protocol "h2", and the server saw HTTP/2);
  - page B's polls all used one h2 connection (one connectionId), and its
    polls were really held on their h2 streams (an empty answer came only
    after the poll timeout);
  - the WebSocket went over HTTP/1.1 on its own TLS connection (loom offers
    no RFC 8441 extended CONNECT, so Chromium asks ALPN for http/1.1);
  - page C shares that h2 connection; closing it resets its held poll's
    stream (RST_STREAM), and loom-chat's on_close names the stream while
    page B's poll on the same connection goes on;
  - at SIGINT the held poll was answered over h2 ("server stopped"), on the
    connection all the polls used.

Chromium is driven through the DevTools protocol over --remote-debugging-pipe
(file descriptors 3 and 4, NUL-delimited JSON): only Python's standard
library is needed, no WebSocket and no debugging port. Exit status: 0 pass,
1 fail. Everything started here is killed on the way out; both children also
get SIGKILL if this process dies (PR_SET_PDEATHSIG).
"""

import argparse
import base64
import ctypes
import fcntl
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

PR_SET_PDEATHSIG = 1
VIEW_W, VIEW_H = 560, 640


class Failure(Exception):
    pass


T0 = time.monotonic()


def log(msg):
    print(f"chat_e2e: [{time.monotonic() - T0:4.1f} s] {msg}", file=sys.stderr, flush=True)


def die_with_parent():
    """preexec_fn: SIGKILL this child when the test process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Deadline:
    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Failure("the test ran out of time")
        return left


class Browser:
    """A Chromium process and a minimal DevTools protocol client."""

    def __init__(self, chromium, profile, deadline, extra_args=()):
        self.deadline = deadline
        self.next_id = 0
        self.buf = b""
        self.exceptions = []  # (page label, text) of uncaught JS exceptions
        self.labels = {}  # sessionId -> page label
        # From the Network domain: requestId -> {"page", "method", "url",
        # "sent", "wall"; once answered "status", "protocol", "connection",
        # "received"}; "sent" and "received" are DevTools' monotonic seconds,
        # "wall" the time of day the request was sent.
        self.requests = {}
        self.websockets = {}  # requestId -> {"page", "url", "request", "status"}
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def child_setup():
            # Chromium reads commands on fd 3 and writes on fd 4. dup2 to a
            # new number also clears close-on-exec, which os.pipe() sets.
            r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)
            die_with_parent()

        args = [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
            "--disable-backgrounding-occluded-windows", "--mute-audio", "--hide-scrollbars",
            "--password-store=basic", "--use-mock-keychain", f"--user-data-dir={profile}",
            f"--window-size={VIEW_W},{VIEW_H}", "--remote-debugging-pipe", *extra_args,
            "about:blank",
        ]
        self.log_path = os.path.join(os.path.dirname(profile), "chromium.log")
        with open(self.log_path, "wb") as errlog:
            # Its own session, so that its whole process tree can be killed
            # at the end with one killpg(). close_fds=False because
            # subprocess would close fds 3 and 4 after child_setup; Python's
            # own descriptors are close-on-exec anyway (PEP 446).
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errlog,
                                         stderr=errlog, preexec_fn=child_setup,
                                         start_new_session=True, close_fds=False)
        os.close(to_chrome_r)
        os.close(from_chrome_w)

    def _read_message(self, timeout):
        end = time.monotonic() + timeout
        while b"\0" not in self.buf:
            left = min(end - time.monotonic(), self.deadline.left())
            if left <= 0:
                raise Failure("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise Failure(f"Chromium went away (see {self.log_path})")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def _on_event(self, msg):
        method = msg.get("method")
        if method == "Runtime.exceptionThrown":
            d = msg["params"]["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "?")
            self.exceptions.append((self.labels.get(msg.get("sessionId"), "?"), text))
            return
        page = self.labels.get(msg.get("sessionId"), "?")
        p = msg.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests[p["requestId"]] = {"page": page, "method": p["request"]["method"],
                                             "url": p["request"]["url"], "sent": p["timestamp"],
                                             "wall": p.get("wallTime", 0)}
        elif method == "Network.responseReceived":
            r = self.requests.setdefault(p["requestId"], {"page": page, "url": "?"})
            resp = p["response"]
            r.update(status=resp["status"], protocol=resp.get("protocol"),
                     connection=resp.get("connectionId"), received=p["timestamp"])
        elif method == "Network.webSocketCreated":
            self.websockets[p["requestId"]] = {"page": page, "url": p["url"]}
        elif method == "Network.webSocketHandshakeResponseReceived":
            w = self.websockets.setdefault(p["requestId"], {"page": page, "url": "?"})
            resp = p["response"]
            w.update(status=resp["status"], request=resp.get("requestHeadersText", ""),
                     request_headers=resp.get("requestHeaders", {}))

    def call(self, method, params=None, session=None, timeout=10):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.to_chrome, data)
            data = data[n:]
        while True:
            reply = self._read_message(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise Failure(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            self._on_event(reply)

    def pump(self, done, seconds):
        """Reads events until done() is true or `seconds` pass."""
        end = time.monotonic() + seconds
        while not done() and time.monotonic() < end:
            self.call("Browser.getVersion")
            time.sleep(0.05)

    def open_page(self, label, url, width=VIEW_W, height=VIEW_H):
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        self.labels[session] = label
        page = Page(self, session, label, target)
        page.call("Runtime.enable")
        page.call("Page.enable")
        page.call("Network.enable")
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        if url:
            page.call("Page.navigate", {"url": url})
        return page

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=3)
            except (Failure, OSError):
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        # Renderers and helpers, whatever is left of the tree.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        for fd in (self.to_chrome, self.from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass


class Page:
    def __init__(self, browser, session, label, target):
        self.browser = browser
        self.session = session
        self.label = label
        self.target = target

    def call(self, method, params=None, timeout=10):
        return self.browser.call(method, params, self.session, timeout)

    def eval(self, expr):
        res = self.call("Runtime.evaluate",
                        {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise Failure(f"page {self.label}: {expr!r} threw "
                          f"{d.get('exception', {}).get('description') or d.get('text')}")
        return res["result"].get("value")

    def wait_for(self, expr, seconds, what):
        end = time.monotonic() + seconds
        while True:
            if self.eval(expr):
                return
            if time.monotonic() >= end:
                raise Failure(f"page {self.label}: {what} (not within {seconds} s)")
            self.browser.deadline.left()
            time.sleep(0.05)

    def key(self, key, code, vk, text=None):
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                "nativeVirtualKeyCode": vk}
        if text:
            down["text"] = text
            down["unmodifiedText"] = text
        self.call("Input.dispatchKeyEvent", down)
        self.call("Input.dispatchKeyEvent",
                  {"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": vk,
                   "nativeVirtualKeyCode": vk})

    def type_message(self, text):
        """Types into the message box like a person would and presses Enter."""
        self.eval("document.getElementById('text').focus(), true")
        self.call("Input.insertText", {"text": text})
        self.key("Enter", "Enter", 13, "\r")

    def screenshot(self):
        return self.call("Page.captureScreenshot", {"format": "png"}, timeout=15)["data"]


LIVE = "document.readyState === 'complete' && window.loomChat?.status === 'live'"


def shows(text):
    return ("[...document.querySelectorAll('#messages .body')]"
            f".some((e) => e.textContent === {json.dumps(text)})")


def set_name(page, name):
    page.eval(f"document.getElementById('name').value = {json.dumps(name)}, true")


def send_and_expect(sender, receiver, text):
    """sender types `text`; receiver, already polling, must show it."""
    before = receiver.eval("window.loomChat.polls")
    t0 = time.monotonic()
    sender.type_message(text)
    sender.wait_for(shows(text), 5, f"own message {text!r} not shown")
    receiver.wait_for(shows(text), 5, f"message {text!r} from page {sender.label} not shown")
    latency = (time.monotonic() - t0) * 1000
    polls = receiver.eval("window.loomChat.polls") - before
    # The message arrives on the poll that was already held; short polling
    # would show up as many more requests.
    if polls > 3:
        raise Failure(f"page {receiver.label} made {polls} polls for one message")
    sender.wait_for("document.getElementById('text').value === ''", 2, "message box not cleared")
    log(f"{sender.label} -> {receiver.label}: {text!r} in {latency:.0f} ms")


def compose_screenshot(browser, shots, path):
    """Puts the pages' screenshots side by side in a third page and captures
    that: one image of the whole conversation, with Python's stdlib only."""
    pad = 16
    width, height = 2 * VIEW_W + 3 * pad, VIEW_H + 2 * pad + 28
    page = browser.open_page("screenshot", None, width, height)
    figures = "".join(
        f'<figure><figcaption>{label}</figcaption>'
        f'<img src="data:image/png;base64,{data}"></figure>' for label, data in shots)
    html = (f"<style>body{{margin:0;padding:{pad}px;background:#2b303b;display:flex;"
            f"gap:{pad}px;font:600 14px system-ui,sans-serif;color:#dfe4ee}}"
            "figure{margin:0}figcaption{height:28px}"
            "img{display:block;border-radius:6px;box-shadow:0 2px 8px #0008}</style>"
            + figures)
    page.eval(f"document.body.innerHTML = {json.dumps(html)};"
              "Promise.all([...document.images].map((i) => i.decode())).then(() => true)")
    data = page.screenshot()
    with open(path, "wb") as f:
        f.write(base64.b64decode(data))
    log(f"screenshot: {path}")


def make_certs(tmpdir):
    """Fresh test certificates (tests/tls/mkcerts.sh) and the base64 SHA-256
    of the test CA's SubjectPublicKeyInfo, which Chromium is told to trust
    (--ignore-certificate-errors-spki-list): the chain the server sends
    ends at a key on that list, so only this test CA is accepted."""
    certs = os.path.join(tmpdir, "certs")
    mkcerts = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "mkcerts.sh")
    subprocess.run(["sh", mkcerts, certs], check=True, timeout=30)
    pub = subprocess.run(["openssl", "x509", "-in", os.path.join(certs, "ca.pem"), "-noout",
                          "-pubkey"], check=True, capture_output=True, timeout=10).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                         check=True, capture_output=True, timeout=10).stdout
    spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
    # The server sends its leaf and the CA, so that the trusted key is in
    # the chain Chromium sees.
    chain = os.path.join(certs, "chain.pem")
    with open(chain, "wb") as out:
        for name in ("server.pem", "ca.pem"):
            with open(os.path.join(certs, name), "rb") as f:
                out.write(f.read())
    return chain, os.path.join(certs, "server.key"), spki


def start_server(binary, tmpdir, deadline, tls=None):
    errlog = open(os.path.join(tmpdir, "loom-chat.log"), "wb")
    cmd = [binary, "--port", "0", "--poll-timeout", "2500", "--verbose"]
    if tls:
        cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog,
                            preexec_fn=die_with_parent)
    errlog.close()
    line = b""
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([proc.stdout], [], [], min(deadline.left(), 10))
        if not ready:
            raise Failure("loom-chat did not say where it listens")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise Failure(f"loom-chat exited early ({proc.wait()})")
        line += chunk
    scheme = b"https" if tls else b"http"
    m = re.search(scheme + rb"://127\.0\.0\.1:(\d+)/", line)
    if not m:
        raise Failure(f"unexpected banner {line!r}")
    return proc, f"{scheme.decode()}://127.0.0.1:{int(m.group(1))}/"


def path_of(url):
    return "/" + url.split("/", 3)[3].split("?")[0] if url.count("/") >= 3 else url


def check_protocols(browser, origin, tls):
    """Every HTTP request of the chat pages went over h2 (with --tls) or
    HTTP/1.1, and was answered. Returns the requestIds of page B's polls
    (GET /api/messages), in the order they were sent."""
    want = "h2" if tls else "http/1.1"
    ours = [(rid, r) for rid, r in browser.requests.items()
            if r["url"].startswith(origin) and r["page"] in ("A", "B")]
    seen = set()
    for _, r in ours:
        if "protocol" not in r:
            continue  # still held (B's current poll), or in flight
        if r["protocol"] != want:
            raise Failure(f"page {r['page']}: {r['method']} {r['url']} went over "
                          f"{r['protocol']}, not {want}")
        seen.add((r["page"], r["method"], path_of(r["url"])))
    # Page B's assets may be revalidated (304) or not asked for at all;
    # page A, first in a fresh profile, fetches them all.
    needed = {("A", "GET", "/"), ("A", "GET", "/chat.css"), ("A", "GET", "/chat.js"),
              ("B", "GET", "/"), ("B", "GET", "/api/messages"), ("B", "POST", "/api/messages"),
              ("B", "GET", "/api/stats")}
    if not needed <= seen:
        raise Failure(f"no {want} answer seen for {sorted(needed - seen)}")
    return [rid for rid, r in ours if r["page"] == "B" and r["method"] == "GET"
            and path_of(r["url"]) == "/api/messages"]


def check_h2_polls(polls):
    """Page B's polls: all on one h2 connection, and held on their streams.
    Returns that connection's id."""
    answered = [r for r in polls if "protocol" in r]
    conns = {r["connection"] for r in answered}
    if len(conns) != 1:
        raise Failure(f"page B's {len(answered)} polls used {len(conns)} connections "
                      f"({sorted(conns)}), not one h2 connection")
    held = [r["received"] - r["sent"] for r in answered]
    # The server holds an empty poll for its poll timeout (2.5 s).
    if max(held) < 2.0:
        raise Failure(f"no poll of page B was held on its h2 stream: {held}")
    conn = conns.pop()
    log("page B: %d polls over h2 on connection %s, the longest held %.1f s" %
        (len(answered), conn, max(held)))
    return conn


def check_websocket(browser, tls):
    """Page A's WebSocket: its handshake was an HTTP/1.1 GET (Chromium opens
    a connection of its own, ALPN http/1.1, as loom offers no RFC 8441)."""
    socks = [w for w in browser.websockets.values() if w["page"] == "A"]
    if len(socks) != 1:
        raise Failure(f"page A opened {len(socks)} WebSockets, not 1")
    w = socks[0]
    want = "wss://" if tls else "ws://"
    if not w["url"].startswith(want) or w.get("status") != 101:
        raise Failure(f"page A's WebSocket: {w}")
    first = w.get("request", "").split("\r\n", 1)[0]
    pseudo = [k for k in w.get("request_headers", {}) if k.startswith(":")]
    if pseudo or not re.fullmatch(r"GET (wss?://[^/]+)?/api/ws\S* HTTP/1\.1", first):
        raise Failure(f"page A's WebSocket handshake was not HTTP/1.1: {first!r}, {pseudo}")
    log(f"page A: WebSocket {w['url'].split('?')[0]} over HTTP/1.1 ({first.split(' ')[-1]})")


def server_log(tmpdir):
    with open(os.path.join(tmpdir, "loom-chat.log"), errors="replace") as f:
        return f.read()


def check_more_pollers(browser, a, url, tmpdir, tls, conn):
    """More long-polling pages (C1..), whose tabs are then closed while their
    polls are held; loom-chat must hear of each through on_close.

    Over h2 there are six of them: with page B that makes seven polls held
    at once, more than the six connections Chromium allows a host over
    HTTP/1.1, which h2 multiplexes on the one connection page B uses.
    Closing a tab resets its stream (RST_STREAM) and keeps the connection,
    which page B's held poll shares (checked again at SIGINT); loom-chat's
    on_close must name each stream. Over HTTP/1.1 one page (its connection
    closes). A poll the server's 2.5 s timeout answers just as its tab
    closes is not held any more, so not every closed page need be heard of:
    at least one must, and none of their polls may stay held."""
    count = 6 if tls else 1
    start = len(server_log(tmpdir))
    pages = [browser.open_page(f"C{i + 1}", url + "?transport=poll") for i in range(count)]
    for c in pages:
        c.wait_for(LIVE + " && window.loomChat.polls >= 2", 10, "no second poll")
    labels = {c.label for c in pages}

    def in_flight():
        return [r for r in browser.requests.values() if r["page"] in labels
                and path_of(r["url"]) == "/api/messages" and "protocol" not in r]

    browser.pump(lambda: len(in_flight()) == count, 3)
    if len(in_flight()) != count:
        raise Failure(f"pages C have {len(in_flight())} polls in flight, not {count}")
    want = "h2" if tls else "http/1.1"
    for r in browser.requests.values():
        if r["page"] in labels and "protocol" in r and (
                r["protocol"] != want or (conn is not None and r["connection"] != conn)):
            raise Failure(f"page {r['page']}: {r['url']} over {r['protocol']} on connection "
                          f"{r['connection']}, not page B's h2 connection {conn}")
    # Held by the server, not just sent: it holds them all and B's (which
    # it renews every 2.5 s) at once.
    waiting = re.compile(r"^loom-chat: GET /api/messages\S*: held on .* \((\d+) waiting\)$",
                         re.M)
    end = time.monotonic() + 6
    while max(map(int, waiting.findall(server_log(tmpdir)[start:])), default=0) < count + 1:
        if time.monotonic() > end:
            raise Failure(f"loom-chat did not hold {count + 1} polls at once")
        browser.deadline.left()
        time.sleep(0.05)
    gone_re = re.compile(r"^loom-chat: GET /api/messages\S*: client went away \((.*)\)$", re.M)
    # The first page closed is one whose poll is fresh (sent less than 1 s
    # ago: its 2.5 s timeout is far), so that at least that one is surely
    # still held when its stream is reset.
    def fresh():
        return [r for r in in_flight() if time.time() - r["wall"] < 1.0]

    browser.pump(fresh, 4)
    if not fresh():
        raise Failure(f"pages C made no new poll in 4 s: {in_flight()}")
    first = fresh()[0]["page"]
    for c in sorted(pages, key=lambda c: c.label != first):
        browser.call("Target.closeTarget", {"targetId": c.target})
    end = time.monotonic() + 5
    while not (gone := gone_re.findall(server_log(tmpdir)[start:])):
        if time.monotonic() > end:
            raise Failure(f"closing {count} page(s) with held polls told loom-chat of none")
        browser.deadline.left()
        time.sleep(0.05)
    # None of their polls stays held: the live panel pushed to page A each
    # second (before the closing it counted at least five) comes down to
    # page B's one (or none, between two of B's polls).
    a.wait_for("window.loomChat.stats.long_poll <= 1", 5,
               f"loom-chat still holds polls of the {count} closed page(s)")
    gone = gone_re.findall(server_log(tmpdir)[start:])
    # Each names its stream although the stream is gone (it was 0 before
    # h2_server.c kept the id for on_close).
    form = r"HTTP/2 stream [1-9]\d*" if tls else r"HTTP/1\.1"
    if len(gone) > count or not all(re.fullmatch(form, g) for g in gone) or \
            (tls and len(set(gone)) != len(gone)):
        raise Failure(f"loom-chat saw {gone} go away, not up to {count} polls over {want}")
    log(f"{count} more long-polling page(s), {count + 1} polls held at once over {want}; "
        f"closed, loom-chat heard {len(gone)} go away ({', '.join(gone)})")


def check_server_log(tmpdir, tls):
    """loom-chat's own access log (--verbose) agrees: with --tls every HTTP
    request was an HTTP/2 stream and the WebSocket an HTTP/1.1 upgrade."""
    text = server_log(tmpdir)
    reqs = re.findall(r"^loom-chat: (GET|POST|HEAD) (\S+) (HTTP/[0-9.]+)", text, re.M)
    ws = re.findall(r"^loom-chat: websocket open \((HTTP/[0-9.]+)", text, re.M)
    want = "HTTP/2" if tls else "HTTP/1.1"
    other = [r for r in reqs if r[2] != want]
    if not reqs or other:
        raise Failure(f"loom-chat saw {len(reqs)} requests, {len(other)} not over {want}: "
                      f"{other[:5]}")
    if ws != ["HTTP/1.1"]:
        raise Failure(f"loom-chat's WebSocket upgrades: {ws}, not one over HTTP/1.1")
    held = len(re.findall(r"^loom-chat: GET /api/messages\S*: held on " + re.escape(want),
                          text, re.M))
    if not held:
        raise Failure(f"loom-chat held no poll over {want}")
    # At SIGINT: "closing, answering N held poll(s)", then the answers: page
    # B's, and now and then one more, a poll a closing page C sent just
    # before its tab went whose reset Chromium had not sent yet (seen once,
    # in a clean-clone CI run); each is answered over the same version.
    m = re.search(r"^loom-chat: closing, answering (\d+) held poll.*?^loom-chat: GET "
                  r"/api/messages\S* (HTTP/[0-9.]+)[^\n]* -> 200$", text, re.M | re.S)
    if not m or int(m.group(1)) < 1 or m.group(2) != want:
        raise Failure("loom-chat did not answer one held poll over %s at SIGINT: %s" %
                      (want, m.group(0) if m else "no such lines"))
    after = text[m.start():]
    answered = re.findall(r"^loom-chat: GET /api/messages\S* (HTTP/[0-9.]+)[^\n]* -> 200$",
                          after, re.M)
    if len(answered) < int(m.group(1)) or any(v != want for v in answered):
        raise Failure(f"at SIGINT loom-chat held {m.group(1)} poll(s) and answered {answered}")
    log(f"loom-chat's log: {len(reqs)} requests over {want}, {held} polls held, "
        "WebSocket over HTTP/1.1")


def run(args, tmpdir, deadline):
    server = browser = None
    try:
        tls = chrome_args = None
        if args.tls:
            *tls, spki = make_certs(tmpdir)
            chrome_args = [f"--ignore-certificate-errors-spki-list={spki}"]
        server, url = start_server(args.binary, tmpdir, deadline, tls)
        log(f"loom-chat at {url}")
        profile = os.path.join(tmpdir, "profile")
        os.mkdir(profile)
        browser = Browser(args.chromium, profile, deadline, chrome_args or ())
        version = browser.call("Browser.getVersion", timeout=20)["product"]
        log(f"browser: {version}")

        a = browser.open_page("A", url)
        b = browser.open_page("B", url + "?transport=poll")
        a.wait_for(LIVE, 10, "chat did not go live")
        b.wait_for(LIVE, 10, "chat did not go live")
        set_name(a, "alice")
        set_name(b, "bob")
        for page, want in ((a, "websocket"), (b, "long-poll")):
            got = page.eval("window.loomChat.transport")
            if got != want:
                raise Failure(f"page {page.label} uses {got}, not {want}")
        if a.eval("window.loomChat.polls") != 0 or a.eval("window.loomChat.sockets") != 1:
            raise Failure("page A should hold one WebSocket and make no poll: polls %s, "
                          "sockets %s" % (a.eval("window.loomChat.polls"),
                                          a.eval("window.loomChat.sockets")))
        ext = a.eval("window.loomChat.extensions")
        if not ext.startswith("permessage-deflate"):
            raise Failure(f"page A's WebSocket has no permessage-deflate: {ext!r}")
        # The live panel: pushed to A each second, fetched by B every 2 s.
        both = ("window.loomChat.stats && window.loomChat.stats.websocket === 1 && "
                "window.loomChat.stats.long_poll + window.loomChat.stats.tcp >= 2")
        a.wait_for(both, 5, "live panel not pushed over the WebSocket")
        b.wait_for(both, 6, "live panel not fetched by the long-polling page")
        shown = a.eval("document.getElementById('st-ws').textContent")
        if shown != "1":
            raise Failure(f"page A's panel shows {shown!r} WebSocket connections, not '1'")
        log("transports: A websocket (%s), B long-poll; live panel: %s" %
            (ext, json.dumps(a.eval("window.loomChat.stats"))))

        # The poll is held: after a re-poll (the server's 2.5 s poll timeout
        # answers the first one empty), nothing comes back for a while.
        p0 = b.eval("window.loomChat.polls")
        b.wait_for(f"window.loomChat.polls > {p0}", 5, "no re-poll after the poll timeout")
        p1 = b.eval("window.loomChat.polls")
        time.sleep(1.0)
        if b.eval("window.loomChat.polls") != p1:
            raise Failure("page B's poll was answered at once instead of being held")

        send_and_expect(a, b, "Hi Bob! Sent on a WebSocket, it came to you through a long poll.")
        send_and_expect(b, a, "Hi Alice, posted over HTTP, it reached you on your WebSocket.")
        send_and_expect(a, b, "Ctrl-C on the server answers the polls, closes the sockets, exits.")
        if a.eval("window.loomChat.polls") != 0:
            raise Failure("page A fell back to polling")
        for page in (a, b):
            n = page.eval("document.querySelectorAll('#messages .msg').length")
            if n != 3:
                raise Failure(f"page {page.label} shows {n} messages, not 3")
            mine = page.eval("document.querySelectorAll('#messages .msg.mine').length")
            if mine != (2 if page is a else 1):
                raise Failure(f"page {page.label} marks {mine} messages as its own")

        origin = url.rstrip("/")
        poll_ids = check_protocols(browser, origin, args.tls)
        polls = [browser.requests[rid] for rid in poll_ids]
        check_websocket(browser, args.tls)
        conn = check_h2_polls(polls) if args.tls else None
        check_more_pollers(browser, a, url, tmpdir, args.tls, conn)

        def b_polls(answered):
            return [r for r in browser.requests.values()
                    if r["page"] == "B" and r["method"] == "GET"
                    and path_of(r["url"]) == "/api/messages" and ("received" in r) == answered]

        if args.screenshot:
            compose_screenshot(browser, [("Page A: alice", a.screenshot()),
                                         ("Page B: bob", b.screenshot())], args.screenshot)

        # Graceful close: B's held poll must be answered and A's WebSocket
        # told and closed ("server stopped"), then loom-chat exits on its own,
        # cleanly. B has one poll in flight, sent less than 1 s ago: the
        # signal does not race with its 2.5 s timeout (an answer then a new
        # poll to a closing server, which the page would take for an outage).
        def b_fresh():
            inflight = b_polls(False)
            return len(inflight) == 1 and time.time() - inflight[0]["wall"] < 1.0

        browser.pump(b_fresh, 4)
        if not b_fresh():
            raise Failure(f"page B has no fresh poll in flight: {b_polls(False)}")
        n_answered = len(b_polls(True))
        server.send_signal(signal.SIGINT)
        try:
            status = server.wait(timeout=min(deadline.left(), 10))
        except subprocess.TimeoutExpired:
            raise Failure("loom-chat did not exit within 10 s of SIGINT")
        if status != 0:
            raise Failure(f"loom-chat exited with status {status} after SIGINT")
        for page in (a, b):
            page.wait_for("window.loomChat.status === 'stopped'", 5,
                          "held poll not answered at shutdown")
        # The poll held when the signal came was answered (status 200, not a
        # reset stream: "server stopped" came with it), on the same h2
        # connection as the others. It is B's last answered poll (the next
        # one, a second later, finds no server).
        want = "h2" if args.tls else "http/1.1"
        browser.pump(lambda: not b_polls(False), 3)
        last = max(b_polls(True), key=lambda r: r["received"])
        if last["status"] != 200 or last["protocol"] != want:
            raise Failure(f"the poll held at SIGINT got {last['status']} over "
                          f"{last['protocol']}, not 200 over {want}")
        if args.tls and last["connection"] != conn:
            raise Failure("the poll held at SIGINT was answered on another connection")
        if len(b_polls(True)) <= n_answered:
            raise Failure("no poll of page B was answered at SIGINT")
        check_server_log(tmpdir, args.tls)
        log("SIGINT: held poll answered (over %s), WebSocket closed, loom-chat exited with "
            "status 0" % want)

        if browser.exceptions:
            raise Failure(f"JavaScript exceptions: {browser.exceptions}")
    finally:
        if browser:
            browser.close()
        if server and server.poll() is None:
            server.kill()
            server.wait()
        if server:
            server.stdout.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True, help="the loom-chat executable")
    ap.add_argument("--chromium", default=os.environ.get("LOOM_CHROMIUM", "/usr/bin/chromium"))
    ap.add_argument("--tls", action="store_true",
                    help="HTTPS with a fresh test certificate: checks h2 end to end")
    ap.add_argument("--screenshot", help="where to save the screenshot (PNG)")
    ap.add_argument("--tmpdir", help="scratch directory (default: a new one, removed after)")
    ap.add_argument("--timeout", type=float, default=50, help="overall limit in seconds")
    args = ap.parse_args()

    deadline = Deadline(args.timeout)
    t0 = time.monotonic()
    own_tmp = args.tmpdir is None
    tmpdir = tempfile.mkdtemp(prefix="loom-chat-e2e-") if own_tmp else args.tmpdir
    ok = False
    try:
        run(args, tmpdir, deadline)
        ok = True
    except Failure as e:
        log(f"FAIL: {e}")
        for name in ("loom-chat.log", "chromium.log"):
            path = os.path.join(tmpdir, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    tail = f.read()[-3000:]
                log(f"--- {name} (end) ---\n{tail}")
    finally:
        if own_tmp:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if ok:
        log(f"PASS ({time.monotonic() - t0:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
