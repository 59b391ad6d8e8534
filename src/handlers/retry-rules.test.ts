import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../gateway/gateway.js';

// One retry rule set for every form of the forwarding exchange (src/http/exchange): the same
// table of failures runs through the proxy handler (streaming form) and an aggregate part
// (buffered form) against a real origin, and both make the same attempts. The one deliberate
// difference is aggregation's own rule: its unsafe last step runs once, even a PUT.
type Fault = '502' | '503' | '504' | '500' | '404' | 'reset';

const CASES: { method: string; fault: Fault; body?: boolean; proxy: number; aggregate: number }[] = [
  { method: 'GET', fault: '502', proxy: 2, aggregate: 2 },
  { method: 'GET', fault: '503', proxy: 2, aggregate: 2 },
  { method: 'GET', fault: '504', proxy: 2, aggregate: 2 },
  { method: 'GET', fault: 'reset', proxy: 2, aggregate: 2 },
  { method: 'GET', fault: '500', proxy: 1, aggregate: 1 },
  { method: 'GET', fault: '404', proxy: 1, aggregate: 1 },
  { method: 'HEAD', fault: '503', proxy: 2, aggregate: 2 },
  { method: 'OPTIONS', fault: 'reset', proxy: 2, aggregate: 2 },
  { method: 'POST', fault: '503', body: true, proxy: 1, aggregate: 1 },
  { method: 'POST', fault: 'reset', body: true, proxy: 1, aggregate: 1 },
  { method: 'PATCH', fault: '502', body: true, proxy: 1, aggregate: 1 },
  // Idempotent (RFC 9110 9.2.2): the proxy retries it; aggregation's write step never repeats.
  { method: 'PUT', fault: '503', proxy: 2, aggregate: 1 },
  { method: 'DELETE', fault: 'reset', proxy: 2, aggregate: 1 },
  // A streamed body that has started to leave cannot be sent again, idempotent or not.
  { method: 'PUT', fault: '503', body: true, proxy: 1, aggregate: 1 },
];

describe('retry rules: one table, proxy and aggregate alike', () => {
  let origin: Server;
  let gw: Gateway;
  let url: string;
  const hits = new Map<string, number>();

  beforeAll(async () => {
    // Each path fails once the way its name says, then answers 200.
    origin = createServer((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      const n = (hits.get(path) ?? 0) + 1;
      hits.set(path, n);
      req.resume();
      const fault = path.split('/')[2] as Fault;
      if (n === 1 && fault === 'reset') return void req.socket.destroy();
      const status = n === 1 ? Number(fault) : 200;
      res.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
    const o = `http://127.0.0.1:${(origin.address() as { port: number }).port}`;
    const methods = [...new Set(CASES.map((c) => c.method))];
    const aggregates = methods
      .map(
        (m) => `  - match: { path: /agg-${m}/:fault/:id }
    aggregate:
      allowUnsafe: true
      parts: { p: { service: s, method: ${m}, path: '/${m}-aggregate/{fault}/{id}' } }`,
      )
      .join('\n');
    gw = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
services:
  s:
    upstreams: ['${o}']
    retry: { attempts: 3, backoff: { base: 1ms, max: 2ms }, budget: { minPerSecond: 1000 } }
    outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 }
routes:
${aggregates}
  - match: { pathPrefix: /proxy }
    proxy: { service: s, stripPrefix: /proxy }
`,
    });
    url = `http://127.0.0.1:${gw.ports.main}`;
  });

  afterAll(async () => {
    await gw?.stop(1_000);
    origin.closeAllConnections();
    await new Promise((r) => origin.close(r));
  });

  it.each(CASES)(
    '$method (body: $body) after $fault: proxy $proxy attempt(s), aggregate $aggregate',
    async (c) => {
      const id = Math.random().toString(36).slice(2);
      const proxied = await fetch(`${url}/proxy/${c.method}-proxy/${c.fault}/${id}`, {
        method: c.method,
        ...(c.body ? { body: 'x' } : {}),
      });
      await proxied.arrayBuffer();
      expect(hits.get(`/${c.method}-proxy/${c.fault}/${id}`), 'proxy attempts').toBe(c.proxy);
      expect(proxied.status).toBe(c.proxy === 2 ? 200 : c.fault === 'reset' ? 502 : Number(c.fault));

      const aggregated = await fetch(`${url}/agg-${c.method}/${c.fault}/${id}`);
      await aggregated.arrayBuffer();
      expect(hits.get(`/${c.method}-aggregate/${c.fault}/${id}`), 'aggregate attempts').toBe(c.aggregate);
      expect(aggregated.status === 200).toBe(c.aggregate === 2);
    },
  );
});
