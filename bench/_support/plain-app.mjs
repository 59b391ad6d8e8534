// The app of the sidecar benchmark: node:http answering a small JSON body on $PORT.
import { createServer } from 'node:http';

const BODY = process.env.BENCH_BODY ?? '{"ok":true}';
createServer((req, res) => {
  if (req.url === '/healthz') return res.end('ok');
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
  res.end(BODY);
}).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
