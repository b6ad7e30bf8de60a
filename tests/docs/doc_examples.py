#!/usr/bin/env python3
"""tests/docs/doc_examples.py - ctest "docs/examples": every C code block in
README.md and docs/*.md that is a complete program (it has a main()) is
compiled against the build tree's libloom with -Wall -Wextra -Werror, and the
blocks marked with an HTML comment just before them are also run:

  <!-- doc-test: tcp-echo -->   argv[1] = a port; the program echoes what a
                                client sends
  <!-- doc-test: http-hello --> argv[1] = a port; GET / answers 200 with a body
  <!-- doc-test: http-get -->   argv[1] = a URL (a local server started here);
                                the program exits 0 and prints the status
  <!-- doc-test: dns -->        argv[1] = "localhost"; the program exits 0 and
                                prints an address of it

Blocks without main() are fragments of a larger program and are only counted.
Usage: doc_examples.py SOURCE_DIR BINARY_DIR
"""
import http.server
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SRC, BIN = sys.argv[1], sys.argv[2]
CC = os.environ.get("CC", "cc")
MARK = re.compile(r"<!--\s*doc-test:\s*([a-z0-9-]+)\s*-->")


def blocks(path):
    """Yields (line, marker, code) for every ```c block of a markdown file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```c":
            start = i + 1
            marker = None
            for k in range(i - 1, max(i - 4, -1), -1):
                m = MARK.search(lines[k])
                if m:
                    marker = m.group(1)
                    break
                if lines[k].strip():
                    break
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            yield start, marker, "\n".join(lines[start:j]) + "\n"
            i = j
        i += 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("the program exited with %d before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the program did not listen on port %d" % port)


def serve(exe, check):
    port = free_port()
    proc = subprocess.Popen([exe, str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        check(port)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def check_echo(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        msg = b"hello, loom\n" * 100
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        if got != msg:
            raise RuntimeError("echo returned %d of %d bytes" % (len(got), len(msg)))


def check_hello(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as r:
        body = r.read()
        if r.status != 200 or not body:
            raise RuntimeError("GET / gave %d with %d bytes" % (r.status, len(body)))


class Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"doc example\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def run_get(exe):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Quiet)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = "http://127.0.0.1:%d/search?q=loom" % srv.server_address[1]
        p = subprocess.run([exe, url], capture_output=True, timeout=20)
        if p.returncode != 0 or b"200" not in p.stdout:
            raise RuntimeError("exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout, p.stderr))
    finally:
        srv.shutdown()
        srv.server_close()


def run_dns(exe):
    p = subprocess.run([exe, "localhost"], capture_output=True, timeout=20)
    if p.returncode != 0 or not (b"127.0.0.1" in p.stdout or b"::1" in p.stdout):
        raise RuntimeError("exit %d, stdout %r, stderr %r" % (p.returncode, p.stdout, p.stderr))


RUNS = {
    "tcp-echo": lambda exe: serve(exe, check_echo),
    "http-hello": lambda exe: serve(exe, check_hello),
    "http-get": run_get,
    "dns": run_dns,
}


def main():
    docs = [os.path.join(SRC, "README.md")]
    ddir = os.path.join(SRC, "docs")
    docs += sorted(os.path.join(ddir, f) for f in os.listdir(ddir) if f.endswith(".md"))
    lib = os.path.join(BIN, "src")
    tmp = tempfile.mkdtemp(prefix="loom-doc-examples-%d-" % os.getpid())
    failed, programs, ran, fragments = [], 0, 0, 0
    try:
        for md in docs:
            rel = os.path.relpath(md, SRC)
            for line, marker, code in blocks(md):
                if not re.search(r"\bint\s+main\s*\(", code):
                    if marker:
                        failed.append("%s:%d: marked %s but has no main()" % (rel, line, marker))
                    fragments += 1
                    continue
                programs += 1
                name = "%s_%d" % (re.sub(r"\W", "_", rel), line)
                csrc = os.path.join(tmp, name + ".c")
                exe = os.path.join(tmp, name)
                with open(csrc, "w") as f:
                    f.write(code)
                cmd = [CC, "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
                       "-Wno-unused-parameter", "-I", os.path.join(SRC, "include"),
                       "-I", BIN, "-o", exe, csrc, "-L", lib, "-lloom",
                       "-Wl,-rpath," + lib]
                p = subprocess.run(cmd, capture_output=True, text=True)
                if p.returncode != 0:
                    failed.append("%s:%d: does not compile:\n%s" % (rel, line, p.stderr))
                    continue
                if marker is None:
                    print("compiled  %s:%d" % (rel, line))
                    continue
                if marker not in RUNS:
                    failed.append("%s:%d: unknown doc-test marker %s" % (rel, line, marker))
                    continue
                try:
                    RUNS[marker](exe)
                    ran += 1
                    print("ran       %s:%d (%s)" % (rel, line, marker))
                except Exception as e:  # noqa: BLE001 - reported as the test's failure
                    failed.append("%s:%d (%s): %s" % (rel, line, marker, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d complete programs compiled, %d run, %d fragments" % (programs, ran, fragments))
    for f in failed:
        print("FAILED " + f)
    return 1 if failed or programs == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
