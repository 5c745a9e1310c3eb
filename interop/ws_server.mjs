// Node `ws` as an echo server for wsengine's clients.
//
// Usage: node ws_server.mjs PORT
//
// Serves on 127.0.0.1:PORT with permessage-deflate on (threshold 0, so every message is
// compressed) until killed, echoing every message with its type.
import { WebSocketServer } from 'ws';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: node ws_server.mjs PORT');
  process.exit(2);
}

const server = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: { threshold: 0 },
  maxPayload: 64 * 1024 * 1024,
});
server.on('listening', () => console.log(`ws server: listening on 127.0.0.1:${port}`));
server.on('error', (e) => {
  console.error(`ws server: ${e.message}`);
  process.exit(1);
});
server.on('connection', (ws, request) => {
  console.log(`ws server: connection; extensions: ${ws.extensions || 'none'}`);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (e) => console.error(`ws server: ${e.message}`));
});
