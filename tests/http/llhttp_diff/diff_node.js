// tests/http/llhttp_diff/diff_node.js - llhttp's side of the HTTP/1
// differential (see diff_run.py; not part of the unit tests).
//
// Run: node --no-deprecation diff_node.js < cases
//
// Parses each case with node's own HTTP parser binding (llhttp, strict: no
// lenient flags, the default maximum header size) and prints the same line
// format as diff_loom.c. A CONNECT response ('c') returns 2 from
// on_headers_complete for a 2xx (no body, upgrade), a HEAD response ('h')
// returns 1 (no body), as node's own client does.
'use strict';
const { HTTPParser, methods } = process.binding('http_parser');
const data = require('fs').readFileSync(0);

function esc(b) {
  let o = '"';
  for (const c of b) {
    if (c === 0x22 || c === 0x5c) o += '\\' + String.fromCharCode(c);
    else if (c < 0x20 || c >= 0x7f) o += '\\u' + c.toString(16).padStart(4, '0');
    else o += String.fromCharCode(c);
  }
  return o + '"';
}
function trim(b) {
  let s = 0, e = b.length;
  while (e > s && (b[e - 1] === 32 || b[e - 1] === 9)) e--;
  while (s < e && (b[s] === 32 || b[s] === 9)) s++;
  return b.subarray(s, e);
}
const L = (x) => Buffer.from(x, 'latin1');
function fields(f) {
  const out = [];
  for (let i = 0; i < f.length; i += 2) out.push('[' + esc(L(f[i])) + ',' + esc(trim(L(f[i + 1]))) + ']');
  return '[' + out.join(',') + ']';
}

function run(mode, buf) {
  const p = new HTTPParser();
  p.initialize(mode === 'q' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, 0, 0);
  const msgs = [];
  let cur = null, hdrs = [], trailers = [], headDone = false, url = '';
  p[HTTPParser.kOnMessageBegin] = () => { cur = null; hdrs = []; trailers = []; headDone = false; url = ''; };
  p[HTTPParser.kOnHeaders] = (h, u) => {
    if (headDone) trailers.push(...h);
    else { hdrs.push(...h); if (u) url += u; }
  };
  p[HTTPParser.kOnHeadersComplete] = (maj, min, h, method, u, status, msg, upgrade) => {
    if (h) hdrs.push(...h);
    headDone = true;
    cur = { maj, min, hdrs, method: methods[method], url: u || url, status, msg, upgrade, body: [] };
    msgs.push(cur);
    if (mode === 'h') return 1;
    if (mode === 'c' && status >= 200 && status < 300) return 2;
    return 0;
  };
  p[HTTPParser.kOnBody] = (b) => { cur.body.push(Buffer.from(b)); };
  p[HTTPParser.kOnMessageComplete] = () => { if (cur) { cur.done = 1; cur.tr = trailers; } };
  p[HTTPParser.kOnExecute] = () => {};
  let status = 'ok', err = '';
  const r = p.execute(buf);
  if (r instanceof Error) {
    status = /Data after .Connection: close/.test(r.reason || '') ? 'closed' : 'err';
    err = r.code + ' ' + r.reason;
  } else if (msgs.length && msgs[msgs.length - 1].upgrade) {
    status = 'upgrade';
  } else {
    const f = p.finish();
    if (f instanceof Error) {
      status = cur && !cur.done ? 'eof-in-body' : 'eof-in-head';
      err = f.code + ' ' + f.reason;
    }
  }
  const out = msgs.map((m) => {
    let s = mode === 'q'
      ? '{"m":' + esc(L(m.method || '?')) + ',"t":' + esc(L(m.url)) + ',"v":"' + m.maj + '.' + m.min + '"'
      : '{"s":' + m.status + ',"reason":' + esc(L(m.msg || '')) + ',"v":"' + m.maj + '.' + m.min + '"';
    s += ',"h":' + fields(m.hdrs);
    if (m.upgrade) return s + ',"up":1}';
    return s + ',"bd":' + esc(Buffer.concat(m.body)) + ',"tr":' + fields(m.tr || []) +
      ',"done":' + (m.done ? 1 : 0) + '}';
  });
  process.stdout.write('[' + out.join(',') + '] ' + status + ' ' + err + '\n');
}

let off = 0;
while (off + 5 <= data.length) {
  const n = data.readUInt32LE(off);
  run(String.fromCharCode(data[off + 4]), data.subarray(off + 5, off + 5 + n));
  off += 5 + n;
}
