import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/logger.js';
import type { ExchangeHooks } from './exchange/hooks.js';
import { type ForwardCall, type ForwardOptions, forward } from './forward.js';
import type { RequestContext } from './types.js';
import { createServicePool, type UpstreamPool } from './upstream/pool.js';
import { serviceSchema } from './upstream/schema.js';
import { startOrigin, type TestOrigin } from './upstream/testing.js';

// The streaming exchange's options and hooks for callers with policies of their own (the
// ambassador): per-try deadline, deadline from arrival, Retry-After, admission, extra headers.
describe('forward with policy options', () => {
  let origin: TestOrigin;
  let pool: UpstreamPool;
  let proxy: Server;
  let url: string;
  let options: ForwardOptions;
  let call: ForwardCall | undefined;
  const log = silentLogger();
  const base: ForwardOptions = {
    retryNonIdempotent: false,
    preserveHost: false,
    target: (ctx) => ctx.req.url ?? '/',
  };

  beforeAll(async () => {
    origin = await startOrigin();
    const def = serviceSchema.parse({
      upstreams: [origin.url],
      retry: {
        attempts: 3,
        on: ['timeout', 'reset', '503', '429'],
        backoff: { base: 1, max: 2 },
        budget: { minPerSecond: 100 },
      },
      outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 },
    });
    pool = createServicePool('o', def, { logger: log });
    proxy = createServer((req, res) => {
      const ctx = {
        req,
        res,
        requestId: 'r-1',
        clientIp: '127.0.0.1',
        protocol: 'http',
        path: req.url ?? '/',
        query: '',
        params: {},
        state: {},
        log,
        startedAt: performance.now(),
        onResponse() {},
      } as RequestContext;
      forward(ctx, pool, options, call);
      res.once('close', () => seen.push(ctx));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  });

  afterEach(() => {
    call = undefined;
    seen.length = 0;
  });

  afterAll(async () => {
    proxy.closeAllConnections();
    await new Promise((r) => proxy.close(r));
    await pool.close();
    await origin.close();
  });

  const seen: RequestContext[] = [];
  const heads: IncomingHttpHeaders[] = [];

  function recorder(admit = () => 0) {
    const events: string[] = [];
    const hooks: ExchangeHooks = {
      admit: () => admit(),
      attemptEnded: (_u, outcome, ticket, dropped) => events.push(`end ${outcome} ${ticket} ${dropped}`),
      refused: () => ({ status: 503, code: 'TRELLIS_E_CIRCUIT_OPEN', detail: 'open' }),
      retried: (reason) => events.push(`retry ${reason}`),
      retryRefused: (reason) => events.push(`refused ${reason}`),
      answered: (_ctx, status) => events.push(`answered ${status}`),
      done: () => events.push('done'),
    };
    return { events, hooks };
  }

  it('cuts a slow attempt at its per-try deadline, retries it, and tells each attempt its time', async () => {
    let n = 0;
    heads.length = 0;
    origin.handler = (req, res) => {
      heads.push(req.headers);
      if (n++ === 0) return void setTimeout(() => res.end('late'), 500);
      res.end('ok');
    };
    const { events, hooks } = recorder();
    options = {
      ...base,
      timeoutMs: 2_000,
      deadlineFromArrival: true,
      perTryTimeoutMs: 100,
      deadlineHeader: 'x-deadline-ms',
      traceparent: true,
      replacedHeaders: new Set(['traceparent', 'x-deadline-ms', 'x-api-key']),
      hooks,
    };
    call = { headers: { 'x-api-key': 'secret' } };
    const started = performance.now();
    const res = await fetch(`${url}/slow`, { headers: { 'x-api-key': 'client', 'x-deadline-ms': '99999' } });
    expect(await res.text()).toBe('ok');
    expect(performance.now() - started).toBeLessThan(450);
    expect(events).toEqual(['end timeout 0 0', 'retry timeout', 'answered 200', 'end success 0 0', 'done']);
    for (const h of heads) {
      expect(Number(h['x-deadline-ms'])).toBeLessThanOrEqual(100);
      expect(h['x-api-key']).toBe('secret');
      expect(h.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    }
    expect(seen[0]!.attempts).toBe(2);
  });

  it('answers the refusal problem when admission refuses every upstream, after no attempt', async () => {
    const { events, hooks } = recorder(() => -1);
    options = { ...base, hooks };
    const res = await fetch(`${url}/x`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_CIRCUIT_OPEN');
    expect(events).toEqual(['answered 503', 'done']);
    expect(seen[0]!.attempts).toBe(0);
  });

  it('retries a 429 after its Retry-After only when asked to, and drops what it retries', async () => {
    let n = 0;
    origin.handler = (_req, res) => {
      if (n++ % 2 === 0) return void res.writeHead(429, { 'retry-after': '1' }).end('slow down');
      res.end('ok');
    };
    options = { ...base };
    expect((await fetch(`${url}/limited`)).status).toBe(429);
    n = 0;
    const { events, hooks } = recorder();
    options = { ...base, retryAfter: true, hooks };
    const started = performance.now();
    const res = await fetch(`${url}/limited`);
    expect(await res.text()).toBe('ok');
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(events).toEqual(['retry 429', 'end success 0 429', 'answered 200', 'end success 0 0', 'done']);
  });

  it('makes no retry that could not start before the deadline: the failed answer is relayed', async () => {
    origin.handler = (_req, res) => void res.writeHead(503, { 'retry-after': '5' }).end('busy');
    const { events, hooks } = recorder();
    options = { ...base, timeoutMs: 1_000, deadlineFromArrival: true, retryAfter: true, hooks };
    const res = await fetch(`${url}/busy`);
    expect(res.status).toBe(503);
    expect(await res.text()).toBe('busy');
    expect(events).toEqual(['refused deadline', 'answered 503', 'end http5xx 0 0', 'done']);
  });

  it('sends a body read already on every attempt', async () => {
    let n = 0;
    const bodies: string[] = [];
    origin.handler = (req, res) => {
      let body = '';
      req
        .on('data', (c) => (body += c))
        .on('end', () => {
          bodies.push(body);
          if (n++ === 0) return void res.writeHead(503).end();
          res.end(body);
        });
    };
    options = { ...base, retryNonIdempotent: true };
    call = { body: Buffer.from('payload') };
    const res = await fetch(`${url}/post`, { method: 'POST', body: 'payload' });
    expect(await res.text()).toBe('payload');
    expect(bodies).toEqual(['payload', 'payload']);
  });
});
