// bench/peers/ws_node.js - the node `ws` peer: the bench protocol of
// bench/ws/README.md (echo, `subscribe`, `broadcast <payload>`) on
// ws.WebSocketServer, permessage-deflate on (ws's defaults otherwise).
// ws has no public prepared-message API: a broadcast is ws.send() to each
// subscriber (uncompressed: a 64-byte payload is under ws's threshold anyway).
//
// Usage: NODE_PATH=<dir with ws> node bench/peers/ws_node.js --port P
'use strict';
const { WebSocketServer } = require('ws');

const i = process.argv.indexOf('--port');
const port = i > 0 ? parseInt(process.argv[i + 1], 10) : 0;
if (!port) {
    process.stderr.write('usage: node ws_node.js --port P\n');
    process.exit(2);
}
const subs = new Set();
const wss = new WebSocketServer({
    host: '127.0.0.1',
    port,
    backlog: 4096,
    perMessageDeflate: true,
    maxPayload: 1 << 20,
    clientTracking: false,
});
wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
        if (!isBinary && data.length === 9 && data.toString() === 'subscribe') {
            subs.add(ws);
            ws.send('subscribed');
            return;
        }
        if (!isBinary && data.length >= 10 && data.toString('latin1', 0, 10) === 'broadcast ') {
            const payload = data.subarray(10);
            for (const s of subs) s.send(payload, { binary: false, compress: false });
            return;
        }
        ws.send(data, { binary: isBinary });
    });
    ws.on('close', () => subs.delete(ws));
    ws.on('error', () => {});
});
process.on('SIGTERM', () => process.exit(0));
