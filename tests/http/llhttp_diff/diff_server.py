#!/usr/bin/env python3
"""tests/http/llhttp_diff/diff_server.py - the request cases of diff_run.py
(llhttp corpus, its mutations and the curated framing cases) replayed against
a live HTTP/1 server, each on its own connection, and compared with loom's
parser verdict (STRICT_HOST). Not part of the unit tests: it needs the corpus
and a server started by hand that answers 200 to every request it serves.

    cc -O1 -g -fsanitize=address,undefined -Iinclude src/http/parser.c \
       tests/http/llhttp_diff/diff_loom.c -o /tmp/diff_loom
    tests/http/llhttp_diff/diff_server.py PORT [--loom /tmp/diff_loom]
        [--corpus DIR] [--stream]

Flags a case where the server answers more requests than the parser found
messages (a framing split between the parser and the server: a smuggling
risk), where it hangs, where it answers fewer without refusing one (4xx or
5xx), and where the parser failed but the server refused nothing. An
Upgrade the server does not take is served as a plain request and the
connection goes on (RFC 9110 section 7.8), which the parser reports as
"upgrade": those cases show up as "more answers" and are expected. With
--stream (a server that answers from the head, before the body) one answer to
a request whose body then fails is expected too.
"""
import argparse, collections, os, re, socket, sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import diff_run as D  # noqa: E402


def exchange(port, data):
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(3)
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    out = b''
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        out += b'<timeout>'
    except OSError:
        pass
    s.close()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('port', type=int)
    ap.add_argument('--loom', default='/tmp/diff_loom')
    ap.add_argument('--stream', action='store_true',
                    help='the server answers from the head (on_body): one answer before a bad body is fine')
    ap.add_argument('--corpus', default=os.path.join(D.ROOT, '..', 'shared', 'conformance', 'llhttp'))
    a = ap.parse_args()
    base = [c for c in D.corpus(a.corpus) if c[0] == 'q']
    cases = list(base)
    for mode, d, label in base:
        for tag, md in D.mutations(mode, d):
            cases.append((mode, md, label + ' #' + tag))
    cases += [(m, d, 'curated ' + g) for m, d, g in D.curated if m == 'q']
    verdicts = D.run([a.loom], cases, dict(os.environ, STRICT_HOST='1'))
    bad = collections.Counter()
    ex = {}
    for (m, d, label), line in zip(cases, verdicts):
        v = D.verdict(line, True)
        n = int(v.split(' ')[0].split(':')[0])
        end = v.split(' ')[1]
        out = exchange(a.port, d)
        sts = [int(x) for x in re.findall(rb'HTTP/1\.[01] (\d{3}) ', out)]
        ok = sum(1 for x in sts if x == 200)
        err = [x for x in sts if x >= 400]
        key = None
        if end == 'upgrade' and ok == n + 1:
            key = 'more answers than parsed messages (ignored upgrade)'
        elif ok > n + 1 or (ok == n + 1 and (not a.stream or end in ('ok', 'closed'))):
            key = 'more answers than parsed messages'
        elif ok == n + 1:
            # A server that answers from the head answers a request whose
            # body then fails or is cut by the end of the input.
            key = 'answered from the head, the body failed or was cut'
        elif b'<timeout>' in out:
            key = 'timeout'
        elif end == 'ok' and ok < n and not err:
            key = 'fewer answers, none refused'
        elif end not in D.FIN and not err and ok == n:
            key = 'parser error, nothing refused'
        if key:
            bad[key] += 1
            ex.setdefault(key, (label, v, sts, d[:200]))
    print('%d cases; flagged: %s' % (len(cases), dict(bad) or 'none'))
    for k, e in ex.items():
        print('%s\n    e.g. %s: parser %s, server %s, %r' % (k, e[0], e[1], e[2], e[3]))


if __name__ == '__main__':
    main()
