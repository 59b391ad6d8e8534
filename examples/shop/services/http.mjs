// A tiny JSON service on plain node:http, shared by the shop's services (no dependencies).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

/**
 * Starts a JSON service. `routes` maps a pattern like `/products/:id` to a function of
 * (params, url, req) returning `{ status?, body, delay? }` (or just the body).
 * Options come from the command line: --port N --name NAME.
 */
export function serve(kind, routes) {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, name: { type: 'string' }, host: { type: 'string' } },
  });
  const port = Number(values.port ?? 0);
  const name = values.name ?? kind;
  const table = Object.entries(routes).map(([pattern, fn]) => ({ parts: pattern.split('/'), fn }));
  let requests = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://service');
    requests++;
    if (url.pathname === '/healthz') return send(res, 200, { ok: true, name, requests });
    const segs = url.pathname.split('/');
    for (const { parts, fn } of table) {
      if (parts.length !== segs.length) continue;
      const params = matchParams(parts, segs);
      if (!params) continue;
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        // A handler that throws (a body that is not JSON, a bug) answers this request with an
        // error and leaves the service running: one bad request must not take it down.
        let out;
        try {
          out = fn(params, url, req, body);
        } catch (err) {
          const bad = err instanceof BadRequest;
          if (!bad) console.error(`${name}: ${req.method} ${url.pathname} failed: ${err?.stack ?? err}`);
          return send(
            res,
            bad ? 400 : 500,
            { error: `${kind}: ${bad ? err.message : 'internal error'}` },
            name,
          );
        }
        const reply = out && typeof out === 'object' && 'body' in out ? out : { body: out };
        if (reply.body === undefined) return send(res, 404, { error: `${kind}: not found` });
        const answer = () => send(res, reply.status ?? 200, reply.body, name);
        if (reply.delay) setTimeout(answer, reply.delay);
        else answer();
      });
      return;
    }
    send(res, 404, { error: `${kind}: no such endpoint` });
  });
  server.keepAliveTimeout = 10_000;
  server.once('error', (err) => {
    console.error(
      `${name}: cannot listen on port ${port}: ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`,
    );
    process.exit(1);
  });
  server.listen(port, values.host ?? '127.0.0.1', () => {
    console.log(`${name} listening on http://127.0.0.1:${server.address().port}`);
  });
  // Stop cleanly: close the listener and idle keep-alive connections, then exit.
  const stop = () => {
    server.close(() => process.exit(0));
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}

/** Thrown by a handler for a request it cannot take: answered 400 with the message. */
export class BadRequest extends Error {}

/** The request body as JSON (an empty body is `{}`); a body that is not JSON is a BadRequest. */
export function jsonBody(text) {
  if (!text) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new BadRequest('the body is not JSON: send a JSON object, e.g. {"pay":"card"}');
  }
}

/** The `:name` values when the pattern matches the path's segments, else undefined. */
function matchParams(parts, segs) {
  const params = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(':')) params[parts[i].slice(1)] = safeDecode(segs[i]);
    else if (parts[i] !== segs[i]) return undefined;
  }
  return params;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function send(res, status, body, servedBy) {
  const text = JSON.stringify(body);
  const headers = { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  if (servedBy) headers['x-served-by'] = servedBy;
  res.writeHead(status, headers);
  res.end(text);
}
