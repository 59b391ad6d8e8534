// The hand-written peer of the ambassador benchmark: node:http in, an undici Pool out, the
// answer streamed back; no retries, breakers or metrics. `node undici-forwarder.mjs PORT ORIGIN`.
import { createServer } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const [port, origin] = process.argv.slice(2);
const pool = new Pool(origin, { connections: 128 });
createServer((req, res) => {
  pool
    .request({
      path: req.url,
      method: req.method,
      headers: { host: new URL(origin).host },
      body: req.method === 'GET' ? null : req,
    })
    .then(
      (up) => {
        res.writeHead(up.statusCode, up.headers);
        pipeline(up.body, res, () => {});
      },
      () => {
        res.writeHead(502).end();
      },
    );
}).listen(Number(port), '127.0.0.1');
