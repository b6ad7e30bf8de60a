#!/usr/bin/env python3
"""tests/http/llhttp_diff/diff_run.py - differential of loom's HTTP/1 parser
against llhttp (node's HTTP parser, strict). Not part of the unit tests: it
needs node, and its findings are judged by hand, then committed as cases of
tests/http/test_http_differential.c with loom's verdict (and llhttp's, with
the reason, where they differ; docs/HTTP.md lists the deliberate
differences).

    cc -O1 -g -fsanitize=address,undefined -Iinclude src/http/parser.c \
       tests/http/llhttp_diff/diff_loom.c -o /tmp/diff_loom
    tests/http/llhttp_diff/diff_run.py [--loom /tmp/diff_loom] [--random N]
        [--seed S] [--corpus DIR] [--emit FILE]

Inputs: the llhttp corpus cases (lenient and pausing ones skipped), each with
mechanical mutations (bare LF, obs-fold, whitespace before the colon, control
bytes in names, values, methods and targets, versions, request-line
whitespace); a curated list of framing cases (Transfer-Encoding and
Content-Length obfuscations, chunk sizes, extensions and trailers, versions,
request and status lines, Connection lists, stray line endings, response
framing); and with --random N, N random byte-level mutations of those.
Output: the disagreements grouped by (loom outcome, llhttp outcome, error),
one example each. --emit writes the curated cases as the C table of
test_http_differential.c (STRICT_HOST verdicts).
"""
import argparse, collections, glob, json, os, random, re, struct, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..', '..'))

def hexv(c):
    try:
        return int(c, 16)
    except ValueError:
        return -1

def normalise(s):
    if s.endswith('\n'): s = s[:-1]
    s = s.replace('\\\n', '')
    s = s.replace('\n', '\r\n')
    out = bytearray(); i = 0
    b = s.encode('utf-8')
    while i < len(b):
        c = b[i:i+1]
        if c == b'\\' and i + 1 < len(b):
            e = b[i+1:i+2]
            m = {b'r': b'\r', b'n': b'\n', b't': b'\t', b'f': b'\f'}
            if e in m: out += m[e]; i += 2; continue
            if e == b'x' and i + 3 < len(b) and hexv(chr(b[i+2])) >= 0 and hexv(chr(b[i+3])) >= 0:
                out.append(int(b[i+2:i+4], 16)); i += 4; continue
        out += c; i += 1
    return bytes(out)
def corpus(CORPUS):
    cases = []
    for f in sorted(glob.glob(CORPUS + '/*/*.md')):
        rel = os.path.relpath(f, CORPUS)
        if '/lenient' in rel or 'pausing' in rel: continue
        txt = open(f, encoding='utf-8').read()
        head = None
        for m in re.finditer(r'^(#+ [^\n]*)$|<!-- meta=(\{.*?\}) -->\s*```http\n(.*?)```', txt, re.M | re.S):
            if m.group(1): head = m.group(1).lstrip('# '); continue
            meta = json.loads(m.group(2))
            t = meta['type']
            if 'lenient' in t or 'pause' in meta: continue
            mode = 'q' if t.startswith('request') else 'r'
            if meta.get('skipBody'): mode = 'h' if mode == 'r' else mode
            cases.append((mode, normalise(m.group(3)), rel + ': ' + head))
    return cases


CTL = [b'\x00', b'\x01', b'\x08', b'\x0b', b'\x0c', b'\x1f', b'\x7f', b'\x80', b'\xff', b'\r', b'\n', b' ', b'\t', b'"', b'(', b'@']

def mutations(mode, d):
    out = []
    if b'\r\n' in d:
        out.append(('allLF', d.replace(b'\r\n', b'\n')))
        i = d.index(b'\r\n'); out.append(('firstLF', d[:i] + d[i+1:]))
        i = d.find(b'\r\n\r\n')
        if i > 0: out.append(('headEndLF', d[:i+2] + d[i+3:]))
        out.append(('firstCRonly', d.replace(b'\r\n', b'\r', 1)))
    lines = d.split(b'\r\n')
    # header lines between 1 and the first empty
    try: e = lines.index(b'')
    except ValueError: e = len(lines)
    for hi in range(1, min(e, 4)):
        L = lines[hi]
        if b':' not in L: continue
        n, v = L.split(b':', 1)
        def rep(newl, tag):
            ll = list(lines); ll[hi] = newl; out.append((tag + str(hi), b'\r\n'.join(ll)))
        rep(n + b' :' + v, 'spBeforeColon')
        rep(n + b'\t:' + v, 'tabBeforeColon')
        rep(b' ' + L, 'leadingSP')
        rep(L + b'\r\n x', 'obsfold')
        rep(L + b'\r\n\tx', 'obsfoldTab')
        for c in CTL:
            rep(n[:1] + c + n[1:] + b':' + v, 'nameCtl%02x_' % c[0])
            rep(n + b':' + v[:2] + c + v[2:], 'valCtl%02x_' % c[0])
        rep(n + b':' + v + b' \t ', 'trailWS')
        rep(n + b':' + b'\t' + v.lstrip(), 'tabLeadVal')
        rep(n + b':', 'emptyVal')
    if mode == 'q' and e > 0:
        rl = lines[0]
        parts = rl.split(b' ')
        if len(parts) == 3:
            m, t, v = parts
            def rq(newl, tag):
                ll = list(lines); ll[0] = newl; out.append((tag, b'\r\n'.join(ll)))
            for c in CTL:
                rq(m + b' ' + t[:1] + c + t[1:] + b' ' + v, 'tgtCtl%02x' % c[0])
                rq(m[:1] + c + m[1:] + b' ' + t + b' ' + v, 'methCtl%02x' % c[0])
            for vv in [b'HTTP/1.0', b'HTTP/1.2', b'HTTP/1.9', b'HTTP/2.0', b'HTTP/0.9', b'HTTP/3.0', b'http/1.1', b'HTTP/1.1 ', b'HTTP/11', b'HTTP/1.10', b'HTTP/1', b'HTTP /1.1', b'HTTP/1.1x', b'HTTPS/1.1', b'HTTP/1.a']:
                rq(m + b' ' + t + b' ' + vv, 'ver' + vv.decode())
            rq(m + b'  ' + t + b' ' + v, 'dblSP1')
            rq(m + b' ' + t + b'  ' + v, 'dblSP2')
            rq(m + b'\t' + t + b' ' + v, 'tab1')
            rq(m + b' ' + t + b'\t' + v, 'tab2')
            rq(m.lower() + b' ' + t + b' ' + v, 'lowerMeth')
            rq(b' ' + rl, 'leadSPline')
    return out


# --- curated framing cases ----------------------------------------------------
H = b'Host: h'
def req(first, hdrs, body=b''):
    return first + b'\r\n' + b''.join(h + b'\r\n' for h in hdrs) + b'\r\n' + body
CH = b'5\r\nhello\r\n0\r\n\r\n'
NEXT = b'GET /n HTTP/1.1\r\nHost: h\r\n\r\n'
curated = []
def add(mode, data, group): curated.append((mode, data, group))
TEs = [b'chunked', b'Chunked', b'CHUNKED', b' chunked', b'chunked ', b'chunked\t', b'chunked, identity', b'identity, chunked', b'gzip, chunked',
       b'xchunked', b'chunkedx', b'chunked\x0b', b'chunked,', b',chunked', b'chunked, chunked', b'"chunked"', b'chunked;q=1', b'identity', b'',
       b'chu nked', b'chunked\x00', b'gzip', b'gzip;q=1, chunked', b'chunked , gzip', b'chunked gzip']
for te in TEs:
    add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: ' + te], CH + NEXT), 'te')
for te in [b'chunked', b'identity', b'']:
    add('q', req(b'POST / HTTP/1.0', [H, b'Transfer-Encoding: ' + te], CH), 'te10')
    add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: ' + te, b'Content-Length: 5'], CH), 'tecl')
    add('q', req(b'POST / HTTP/1.1', [H, b'Content-Length: 5', b'Transfer-Encoding: ' + te], CH), 'tecl')
add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: gzip', b'Transfer-Encoding: chunked'], CH), 'te2')
add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: chunked', b'Transfer-Encoding: gzip'], CH), 'te2')
add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: chunked', b'Transfer-Encoding: chunked'], CH), 'te2')
add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: chunked', b'Transfer-Encoding:'], CH), 'te2')
CLs = [b'5', b'05', b'+5', b'-5', b'5, 5', b'5,5', b'5,6', b' 5', b'5 ', b'5\t', b'0x5', b'5.0', b'', b'99999999999999999999', b'18446744073709551616',
       b'\xff5', b'5a', b'5 5', b'00000000000000000000005', b'0']
for cl in CLs:
    add('q', req(b'POST / HTTP/1.1', [H, b'Content-Length: ' + cl], b'hello' + NEXT), 'cl')
add('q', req(b'POST / HTTP/1.1', [H, b'Content-Length: 5', b'Content-Length: 5'], b'hello'), 'cl2')
add('q', req(b'POST / HTTP/1.1', [H, b'Content-Length: 5', b'Content-Length: 6'], b'hello!'), 'cl2')
CHUNKS = [b'5\r\nhello\r\n0\r\n\r\n', b'05\r\nhello\r\n0\r\n\r\n', b'0005\r\nhello\r\n000\r\n\r\n', b'5 \r\nhello\r\n0\r\n\r\n', b'5\t\r\nhello\r\n0\r\n\r\n',
          b'5;a=b\r\nhello\r\n0\r\n\r\n', b'5 ;a=b\r\nhello\r\n0\r\n\r\n', b'5; a = b\r\nhello\r\n0\r\n\r\n', b'5;a="b c"\r\nhello\r\n0\r\n\r\n', b'5;a="b\\"c"\r\nhello\r\n0\r\n\r\n',
          b'5;a="b\r\nhello\r\n0\r\n\r\n', b'5;\r\nhello\r\n0\r\n\r\n', b'5;a=\r\nhello\r\n0\r\n\r\n', b'5;a\r\nhello\r\n0\r\n\r\n', b'5;a;b\r\nhello\r\n0\r\n\r\n',
          b'5;a=b\x00\r\nhello\r\n0\r\n\r\n', b'5;a="\x01"\r\nhello\r\n0\r\n\r\n', b'5;a="\x80"\r\nhello\r\n0\r\n\r\n', b'5;a=\x80\r\nhello\r\n0\r\n\r\n',
          b'A\r\n0123456789\r\n0\r\n\r\n', b'a\r\n0123456789\r\n0\r\n\r\n', b'0x5\r\nhello\r\n0\r\n\r\n', b'+5\r\nhello\r\n0\r\n\r\n', b'-5\r\nhello\r\n0\r\n\r\n', b' 5\r\nhello\r\n0\r\n\r\n',
          b'fffffffffffffffff\r\nhello\r\n0\r\n\r\n', b'10000000000000005\r\nhello\r\n0\r\n\r\n', b'0000000000000005\r\nhello\r\n0\r\n\r\n', b'00000000000000005\r\nhello\r\n0\r\n\r\n',
          b'5\nhello\n0\n\n', b'5\r\nhello\n0\r\n\r\n', b'5\r\nhelloX\r\n0\r\n\r\n', b'5\r\nhello\r\n0\r\nA: b\r\n\r\n', b'5\r\nhello\r\n0\r\nA : b\r\n\r\n',
          b'5\r\nhello\r\n0\r\n a: b\r\n\r\n', b'5\r\nhello\r\n0\r\nA: b\r\n c\r\n\r\n', b'5\r\nhello\r\n0\r\nA: \x00\r\n\r\n', b'5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n',
          b'5\r\nhello\r\n0;x=1\r\n\r\n', b'5\r\nhello\r\n0\r\n\n', b'5\r\nhello\r\n\r\n0\r\n\r\n', b'5\r\nhello\r\n0 \r\n\r\n', b'\r\n5\r\nhello\r\n0\r\n\r\n', b'5\x00\r\nhello\r\n0\r\n\r\n', b'5\r\r\nhello\r\n0\r\n\r\n',
          b'5 ; a\r\nhello\r\n0\r\n\r\n', b'5;a =b\r\nhello\r\n0\r\n\r\n', b'5;a= b\r\nhello\r\n0\r\n\r\n']
for ch in CHUNKS:
    add('q', req(b'POST / HTTP/1.1', [H, b'Transfer-Encoding: chunked'], ch + NEXT), 'chunk')
for ch in CHUNKS[:12]:
    add('r', b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' + ch, 'rchunk')
for v in [b'HTTP/1.0', b'HTTP/1.2', b'HTTP/1.9', b'HTTP/2.0', b'HTTP/0.9', b'HTTP/3.0', b'http/1.1', b'HTTP/1.1 ', b'HTTP/11', b'HTTP/1.10', b'HTTP/1', b'HTTP /1.1', b'HTTPS/1.1', b'HTTP/1.a', b'ICE/1.0', b'RTSP/1.0']:
    add('q', req(b'GET / ' + v, [H]), 'version')
for first in [b'GET  / HTTP/1.1', b'GET /  HTTP/1.1', b'GET\t/ HTTP/1.1', b'GET /\tHTTP/1.1', b' GET / HTTP/1.1', b'get / HTTP/1.1', b'PRI * HTTP/1.1', b'G(T / HTTP/1.1',
              b'M-SEARCH * HTTP/1.1', b'QUERY / HTTP/1.1', b'BREW / HTTP/1.1', b'GET /a b HTTP/1.1', b'GET /\x7f HTTP/1.1', b'GET /\x80 HTTP/1.1', b'GET /"{}|\\^` HTTP/1.1',
              b'GET /#f HTTP/1.1', b'GET * HTTP/1.1', b'GET http://a/ HTTP/1.1', b'CONNECT a:443 HTTP/1.1', b'GET [::1]:80 HTTP/1.1', b'GET / HTTP/1.1\r', b'GET /']:
    add('q', req(first, [H]), 'line')
for v in [b'keep-alive upgrade', b'close foo', b'foo close', b'close,foo', b'close\t,x', b', , close ,', b'CLOSE', b'keep-alive, upgrade', b'upgrade ', b'close;x']:
    add('q', req(b'GET / HTTP/1.1', [H, b'Connection: ' + v, b'Upgrade: ws']) + NEXT, 'connection')
add('q', req(b'GET / HTTP/1.0', [H, b'Connection: close, keep-alive']) + NEXT, 'connection')
add('q', req(b'GET / HTTP/1.0', [H, b'Connection: keep-alive']) + NEXT, 'connection')
for hs in [[b'Host: a', b'Host: b'], [], [b'Host:'], [b'Host : h'], [b'Host: h', b' X: y'], [b'Host: h', b'X: a', b' b'], [b'Host: h', b'X\x00: y'], [b'Host: h', b'X: a\x7fb'], [b'Host: h', b'X: a\rb'],
           [b'Host: h', b'X: \x80\xff'], [b'Host: h', b'Expect: 100-continue', b'Content-Length: 5']]:
    add('q', req(b'POST / HTTP/1.1', hs, b'hello') + NEXT, 'fields')
add('q', b'\r\n' + req(b'GET / HTTP/1.1', [H]), 'empty-lines')
add('q', b'\n' + req(b'GET / HTTP/1.1', [H]), 'empty-lines')
add('q', req(b'GET / HTTP/1.1', [H]) + b'\r\n' + NEXT, 'empty-lines')
add('q', req(b'GET / HTTP/1.1', [H]) + b'\n' + NEXT, 'empty-lines')
add('q', b'GET / HTTP/1.1\nHost: h\n\n', 'empty-lines')
STATUS = [b'HTTP/1.1 200 OK', b'HTTP/1.1 200', b'HTTP/1.1 200 ', b'HTTP/1.1 099 X', b'HTTP/1.1 1000 X', b'HTTP/1.1 20 X', b'HTTP/1.1 200\tOK', b'HTTP/1.1  200 OK',
          b'HTTP/1.0 200 OK', b'HTTP/2.0 200 OK', b'HTTP/1.2 200 OK', b'http/1.1 200 OK', b'HTTP/1.1 999 X', b'HTTP/1.1 200 OK\x00', b'HTTP/1.1 200 O\x7fK', b'HTTP/1.1 200 \x80\xff',
          b'HTTP/1.1 204 No', b'HTTP/1.1 304 NM', b'HTTP/1.1 100 C', b'HTTP/1.1 101 S', b'HTTP/1.1 103 E', b'HTTP/1.1 199 X']
RNEXT = b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi'
for s in STATUS:
    add('r', req(s, [b'Content-Length: 5'], b'hello') + RNEXT, 'status')
for hs in [[], [b'Transfer-Encoding: gzip'], [b'Transfer-Encoding: chunked, gzip'], [b'Transfer-Encoding: gzip, chunked'], [b'Content-Length: 5, 5'], [b'Content-Length: 5', b'Content-Length: 5'],
           [b'Content-Length: 5', b'Transfer-Encoding: chunked'], [b'Connection: close', b'Content-Length: 5'], [b'Transfer-Encoding: xchunked'], [b'X: a', b' b', b'Content-Length: 5']]:
    add('r', req(b'HTTP/1.1 200 OK', hs, b'hello') + RNEXT, 'rframing')
for s in [b'HTTP/1.1 200 OK', b'HTTP/1.1 204 No', b'HTTP/1.1 304 NM']:
    for hs in [[b'Content-Length: 5'], [b'Transfer-Encoding: chunked']]:
        add('h', req(s, hs) + RNEXT, 'head')
add('r', req(b'HTTP/1.0 200 OK', [b'Transfer-Encoding: chunked'], CH), 'rframing')
add('r', req(b'HTTP/1.0 200 OK', [b'Connection: keep-alive', b'Content-Length: 5'], b'hello') + RNEXT, 'rframing')

# --- random mutations ---------------------------------------------------------
SET = b'\r\n \t:;,"\x00\x0b\x7f\x80\xff0a-=\\/Hh'
TOK = [b'\r\n', b'chunked', b'Content-Length: ', b'Transfer-Encoding: ', b', ', b'0', b'\r\n\r\n', b'HTTP/1.1', b' ', b'Connection: close', b'Upgrade: x\r\nConnection: upgrade']
def mut(d):
    d = bytearray(d)
    for _ in range(random.randint(1, 3)):
        k = random.random()
        p = random.randint(0, len(d))
        if k < 0.3: d[p:p] = bytes([random.choice(SET)])
        elif k < 0.5 and len(d): del d[min(p, len(d)-1)]
        elif k < 0.65 and len(d): d[min(p, len(d)-1)] = random.choice(SET)
        elif k < 0.85: d[p:p] = random.choice(TOK)
        else:
            # duplicate a line
            lines = bytes(d).split(b'\r\n'); i = random.randrange(len(lines)); lines.insert(i, lines[i]); d = bytearray(b'\r\n'.join(lines))
    return bytes(d)

# --- running and comparing ----------------------------------------------------
def run(prog, cs, env=None):
    d = b''.join(struct.pack('<I', len(c[1])) + c[0].encode() + c[1] for c in cs)
    r = subprocess.run(prog, input=d, capture_output=True, env=env)
    if r.returncode:
        sys.exit('%s failed (%d): %s' % (prog[0], r.returncode, r.stderr.decode()[-2000:]))
    out = r.stdout.decode().splitlines()
    assert len(out) == len(cs), (prog, len(out), len(cs))
    return out

HDR = open(os.path.join(ROOT, 'include', 'loom', 'http_parser.h')).read()
names = {int(v): n for n, v in re.findall(r'XX\((\w+), (-\d+),', HDR)}
FIN = ('ok', 'upgrade', 'closed', 'eof')
def verdict(line, isloom):
    j = line.rindex('] '); msgs = json.loads(line[:j+1]); st = line[j+2:].split(' ', 1)
    done = [m for m in msgs if m.get('done') or m.get('up')]
    bl = ','.join(str(len(m.get('bd', ''))) for m in done if not m.get('up'))
    end = st[0]
    if end == 'err': end = names[int(st[1].split('|')[1])] if isloom else 'error'
    elif end.startswith('eof'): end = 'eof'
    return '%d%s %s' % (len(done), (':' + bl) if bl else '', end)
def agree(va, vb):
    a0, a1 = va.split(' '); b0, b1 = vb.split(' ')
    if a1 in FIN or b1 in FIN: return va == vb
    return a0 == b0

def why(c, va, vb):
    R = [
     (r'Transfer-Encoding: chunked\t|Content-Length: 5\t|Connection: close\t,', 'OWS around a field value or list element is not part of it (RFC 9110 5.5, 5.6.1); llhttp rejects or misreads a trailing HTAB'),
     (r'Transfer-Encoding: chunked,\r', 'empty list elements are ignored (RFC 9110 5.6.1): the final coding is chunked'),
     (r'Transfer-Encoding: (identity, |gzip(;q=1)?, )chunked|Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked', 'loom decodes no coding but chunked: 501 (RFC 9112 6.1); llhttp hands the coded body on'),
     (r'HTTP/1.0\r\nHost: h\r\nTransfer-Encoding', 'Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1): 400'),
     (r'Transfer-Encoding: \r', 'an empty Transfer-Encoding is present but chunked is not final: 400 (RFC 9112 6.3 item 4); llhttp ignores it'),
     (r'5 ;a=b|5; a = b|5 ; a|5;a =b|5;a= b', 'BWS around chunk-ext parts must be accepted (RFC 9112 7.1.1, RFC 9110 5.6.3); llhttp strict rejects it'),
     (r'5;a=\r', 'chunk-ext-val is token / quoted-string, never empty (RFC 9112 7.1.1)'),
     (r'00000000000000005', 'more than 16 hex digits in a chunk size, leading zeros included, is rejected to bound the chunk line'),
     (r'0\r\nContent-Length: 5\r\n\r\n', 'trailer fields are checked and reported, never used for framing (RFC 9110 6.5.1)'),
     (r'HTTP/1\.[29]', 'a higher HTTP/1 minor version is served as 1.1 (RFC 9110 2.5); llhttp strict rejects it'),
     (r'HTTP/(2\.0|0\.9)', 'only HTTP/1.x is parsed: 505 (RFC 9110 15.6.6)'),
     (r'RTSP/', 'loom parses HTTP only'),
     (r'GET  /|GET /  HTTP|GET /\r', 'exactly one SP between request-line parts (RFC 9112 3); no HTTP/0.9 simple requests'),
     (r'^(get|BREW) ', 'any token is a method (RFC 9110 9.1); the server answers 501 to unknown ones'),
     (r'GET \[::1\]', 'the parser takes any target form; the server answers 400 when the method does not allow it (RFC 9112 3.2)'),
     (r'HTTP/1.0\r\nHost: h\r\nConnection: close, keep-alive', '"close" wins over "keep-alive" (RFC 9112 9.6)'),
     (r'Host: a\r\nHost: b|POST / HTTP/1.1\r\n\r\n', 'HTTP/1.1 needs exactly one Host (RFC 9112 3.2): 400'),
     (r'(Host:|\xff)\r\n\r\nhelloGET', '"helloGET" is a valid method token; llhttp knows only a fixed list'),
     (r'Content-Length: 0\r\n\r\nhelloGET', '"helloGET" is a valid method token; llhttp knows only a fixed list'),
     (r'^\n|\r\n\r\n\nGET', 'a bare LF is no line ending, not even an empty line before a request (RFC 9112 2.2 allows either)'),
     (r'HTTP/1.1 099', 'a status code is 100 to 999 (RFC 9110 15)'),
     (r'HTTP/1.1 200 O(K\x00|\x7fK)', 'the reason phrase is HTAB / SP / VCHAR / obs-text (RFC 9112 4)'),
     (r'HTTP/1.1 1(01|99) ', '1xx responses have no content (RFC 9112 6.3 item 1); llhttp reads a body for some'),
    ]
    for pat, r in R:
        if re.search(pat, c): return r
    return None

def cstr(s):
    o = '"'
    prev_hex = False
    for ch in s:
        k = ord(ch)
        if ch == '"': o += '\\"'; prev_hex = False
        elif ch == '\\': o += '\\\\'; prev_hex = False
        elif ch == '\r': o += '\\r'; prev_hex = False
        elif ch == '\n': o += '\\n'; prev_hex = False
        elif ch == '\t': o += '\\t'; prev_hex = False
        elif k < 0x20 or k >= 0x7f: o += '\\x%02x' % k; prev_hex = True; continue
        else:
            if prev_hex and ch in '0123456789abcdefABCDEF': o += '""'
            if ch == '?': o += '\\?'
            else: o += ch
            prev_hex = False
    return o + '"'

def outcome(line):
    j = line.rindex('] ')
    msgs = [m for m in json.loads(line[:j + 1]) if m.get('done') or m.get('up')]
    for m in msgs:
        if m.get('m') == '?':
            m['m'] = None  # a method llhttp does not know
    st = line[j + 2:].split(' ', 1)
    v = 'reject' if st[0] in ('err', 'closed', 'eof-in-body', 'eof-in-head') else st[0]
    return msgs, v, st[1] if len(st) > 1 else ''

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--loom', default='/tmp/diff_loom')
    ap.add_argument('--node', default='node')
    ap.add_argument('--corpus', default=os.path.join(ROOT, '..', 'shared', 'conformance', 'llhttp'))
    ap.add_argument('--random', type=int, default=0)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--emit')
    a = ap.parse_args()
    random.seed(a.seed)
    nodecmd = [a.node, '--no-deprecation', os.path.join(HERE, 'diff_node.js')]
    if a.emit:
        A = run([a.loom], curated, dict(os.environ, STRICT_HOST='1'))
        B = run(nodecmd, curated)
        lines = []
        for (m, c, g), la, lb in zip(curated, A, B):
            c = c.decode('latin1')
            va, vb = verdict(la, True), verdict(lb, False)
            same = agree(va, vb)
            w = None if same else why(c, va, vb)
            if not same and w is None:
                print('no reason for', g, va, vb, repr(c))
            lines.append("    C('%s', %s,\n      \"%s\", %s, %s)," % (m, cstr(c), va, 'NULL' if same else '"%s"' % vb, cstr(w) if w else 'NULL'))
        open(a.emit, 'w').write('\n'.join(lines) + '\n')
        return
    base = corpus(a.corpus)
    cases = list(base)
    for mode, d, label in base:
        for tag, md in mutations(mode, d):
            cases.append((mode, md, label + ' #' + tag))
    cases += [(m, d, 'curated ' + g) for m, d, g in curated]
    pool = base + [(m, d, 'curated') for m, d, g in curated]
    for _ in range(a.random):
        m, d, l = random.choice(pool)
        cases.append((m, mut(d), l + ' #random'))
    A = run([a.loom], cases)
    B = run(nodecmd, cases)
    groups = collections.defaultdict(list)
    for c, la, lb in zip(cases, A, B):
        ma, va, ea = outcome(la)
        mb, vb, eb = outcome(lb)
        for x, y in zip(ma, mb):
            if y.get('m', 1) is None:
                y['m'] = x.get('m')
        if (ma, va) == (mb, vb):
            continue
        key = '%s/%s' % (va, vb) + (' messages differ' if va == vb else ' messages %d/%d' % (len(ma), len(mb)))
        groups[key].append((c, ea, eb))
    print('%d cases, %d disagree' % (len(cases), sum(len(v) for v in groups.values())))
    for k, v in sorted(groups.items(), key=lambda x: -len(x[1])):
        print('### loom/llhttp %s: %d' % (k, len(v)))
        errs = collections.Counter((x[1][:40], x[2][:60]) for x in v)
        for e, n in errs.most_common(12):
            ex = next(x[0] for x in v if (x[1][:40], x[2][:60]) == e)
            print('   %5d  loom: %s | llhttp: %s\n          e.g. %s [%s] %r' % (n, e[0] or '-', e[1] or '-', ex[2][:60], ex[0], ex[1][:160]))

if __name__ == '__main__':
    main()
