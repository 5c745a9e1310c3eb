// Node `ws` as a client of a wsengine echo server.
//
// Usage: node ws_client.mjs URL
//
// Connects offering permessage-deflate (ws's default), checks that the server agreed to it,
// sends text and binary messages from 1 B to 1 MiB one at a time and checks each echo, then
// closes with 1000. Exits non-zero on any failure.
import WebSocket from 'ws';
import { SIZES, text, binary } from './messages.mjs';

const url = process.argv[2];
if (!url) {
  console.error('usage: node ws_client.mjs URL');
  process.exit(2);
}

function fail(message) {
  console.error(`ws client: FAILED: ${message}`);
  process.exit(1);
}

const ws = new WebSocket(url, { perMessageDeflate: true, handshakeTimeout: 10000 });
let headerExtensions = '';
ws.on('upgrade', (response) => {
  headerExtensions = response.headers['sec-websocket-extensions'] || '';
});
ws.on('error', (e) => fail(`connection error: ${e.message}`));
ws.on('close', (code, reason) => {
  if (!done) fail(`closed early: ${code} ${reason}`);
});

const pending = [];
for (const size of SIZES) {
  pending.push({ data: text(size), isBinary: false, size });
  pending.push({ data: Buffer.from(binary(size)), isBinary: true, size });
}
let done = false;
let checked = 0;

ws.on('open', () => {
  console.log(`ws client: connected to ${url}; extensions: ${headerExtensions || 'none'}`);
  if (!headerExtensions.includes('permessage-deflate') || !ws.extensions.includes('permessage-deflate')) {
    fail(`permessage-deflate not negotiated (header ${JSON.stringify(headerExtensions)}, ws.extensions ${JSON.stringify(ws.extensions)})`);
  }
  ws.send(pending[0].data, { binary: pending[0].isBinary });
});

ws.on('message', (data, isBinary) => {
  const want = pending.shift();
  if (!want) fail('an unexpected extra message');
  const kind = want.isBinary ? 'binary' : 'text';
  if (isBinary !== want.isBinary) fail(`echo of ${kind} of ${want.size} bytes came back as ${isBinary ? 'binary' : 'text'}`);
  const same = want.isBinary ? Buffer.compare(data, want.data) === 0 : data.toString('utf8') === want.data;
  if (!same) fail(`echo of ${kind} of ${want.size} bytes differs (got ${data.length} bytes)`);
  checked++;
  if (pending.length > 0) {
    ws.send(pending[0].data, { binary: pending[0].isBinary });
  } else {
    done = true;
    ws.close(1000, 'checked');
  }
});

ws.on('close', (code) => {
  if (done) {
    if (code !== 1000) fail(`close code ${code}, expected 1000`);
    console.log(`ws client: OK: ${checked} messages of 1 B to 1 MiB echoed intact`);
    process.exit(0);
  }
});

setTimeout(() => fail('timed out after 60 s'), 60000).unref();
