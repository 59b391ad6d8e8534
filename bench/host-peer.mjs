// One workload as its own Node process (the peer of `trellis host`): the same fetch-style
// module, served with node:http and the same minimal Request/Response adaptation.
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

const [port, file] = process.argv.slice(2);
const mod = await import(pathToFileURL(file).href);
const fetchFn = mod.default.fetch;
createServer(async (req, res) => {
  const response = await fetchFn(
    new Request(`http://${req.headers.host}${req.url}`, { method: req.method }),
    {},
  );
  const headers = {};
  response.headers.forEach((v, k) => {
    headers[k] = v;
  });
  res.writeHead(response.status, headers);
  res.end(Buffer.from(await response.arrayBuffer()));
}).listen(Number(port), '127.0.0.1');
