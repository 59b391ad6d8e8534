// The serve-static 2 peer of the static benchmark: node:http, no framework.
// Usage: node serve-static.mjs PORT ROOT
import { createServer } from 'node:http';
import serveStatic from 'serve-static';

const [port, root] = process.argv.slice(2);
const serve = serveStatic(root, { index: ['index.html'] });
const server = createServer((req, res) =>
  serve(req, res, () => {
    res.statusCode = 404;
    res.end('not found');
  }),
);
server.keepAliveTimeout = 65_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
