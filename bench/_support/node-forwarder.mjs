// The floor of what a Node proxy can do: node:http in front of one undici Pool, nothing else
// (no routing, no request ids, no metrics, no logs). The gateway benchmark's fourth peer.
// Usage: node node-forwarder.mjs PORT UPSTREAM_URL
import { createServer } from 'node:http';
import { Pool } from 'undici';

const [port, upstream] = process.argv.slice(2);
// The same pool settings as a trellis service's defaults: 128 keep-alive connections, no pipelining.
const pool = new Pool(upstream, { connections: 128, pipelining: 1 });

// RFC 9110 §7.6.1: connection-specific fields are not forwarded, in either direction.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

function forwardable(headers) {
  const out = {};
  for (const name in headers) if (!HOP_BY_HOP.has(name)) out[name] = headers[name];
  return out;
}

const server = createServer((req, res) => {
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool.stream(
    {
      path: req.url,
      method: req.method,
      headers: forwardable(req.headers),
      body: hasBody ? req : null,
    },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, forwardable(headers));
      return res;
    },
    (err) => {
      if (!err) return;
      if (res.headersSent) res.destroy(err);
      else {
        res.statusCode = 502;
        res.end();
      }
    },
  );
});
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  pool.close().then(() => process.exit(0));
});
