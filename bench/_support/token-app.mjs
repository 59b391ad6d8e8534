// The app of the sidecar state benchmark: it only hands the platform API's address and token
// (which the sidecar gives the app alone) to the benchmark through a file, and answers /healthz.
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

writeFileSync(
  process.env.BENCH_TOKEN_FILE,
  JSON.stringify({ url: process.env.TRELLIS_SIDECAR_URL, token: process.env.TRELLIS_SIDECAR_TOKEN }),
);
createServer((_req, res) => res.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
