import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, flushLogger, lineWriter } from '../core/logger.js';
import type { RequestContext } from '../http/types.js';
import { accessLog } from './access-log.js';

const dir = mkdtempSync(join(tmpdir(), 'trellis-access-log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function context(overrides: Partial<RequestContext>): RequestContext {
  return {
    requestId: 'req-1',
    req: { method: 'GET', headers: { 'content-length': '12' } } as unknown as IncomingMessage,
    clientIp: '10.0.0.7',
    ...overrides,
  } as RequestContext;
}

/** The lines a logger made by createLogger and a plain pino logger write for the same requests. */
async function bothLines(ctxs: RequestContext[]): Promise<[string[], string[]]> {
  const fastFile = join(dir, `fast-${Math.random()}.log`);
  const fast = createLogger({ name: 'gateway', pretty: false, destination: { fd: openSync(fastFile, 'w') } });
  const slowFile = join(dir, `slow-${Math.random()}.log`);
  // pino with a stream of its own is not one of ours: the access log goes through pino's serialiser.
  const slow = pino(
    { level: 'info', base: { name: 'gateway' } },
    pino.destination({ dest: slowFile, sync: true }),
  );
  // The comparison means something only if the two took different paths.
  expect(lineWriter(fast, 'info')).toBeTypeOf('function');
  expect(lineWriter(slow, 'info')).toBeUndefined();
  for (const ctx of ctxs) {
    accessLog(fast, 'info')(ctx, '/items/"42"\\', 200, 0.0123456);
    accessLog(slow, 'info')(ctx, '/items/"42"\\', 200, 0.0123456);
  }
  await flushLogger(fast);
  const read = (f: string) =>
    readFileSync(f, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => l.replace(/"time":\d+/, '"time":0'));
  return [read(fastFile), read(slowFile)];
}

describe('access log line', () => {
  it('is byte for byte the line pino writes for the same members, undefined ones left out', async () => {
    const [fast, slow] = await bothLines([
      context({}),
      context({
        routeName: 'catalog "v2"',
        frontend: 'default',
        serviceName: 'catalog',
        upstream: 'http://127.0.0.1:3001',
        attempts: 2,
        upstreamMs: 4.56789,
        responseBytes: 512,
        errorCode: 'TRELLIS_E_UPSTREAM_TIMEOUT',
      }),
    ]);
    expect(fast).toEqual(slow);
    expect(JSON.parse(fast[1]!)).toMatchObject({
      level: 30,
      name: 'gateway',
      msg: 'access',
      path: '/items/"42"\\',
      route: 'catalog "v2"',
      ms: 12.346,
      upstreamMs: 4.568,
      bytesIn: 12,
      bytesOut: 512,
    });
    expect(JSON.parse(fast[0]!)).not.toHaveProperty('route');
  });

  it('shows a request refused before any attempt as zero retries, with the refusal as its error', async () => {
    const [fast, slow] = await bothLines([
      context({ serviceName: 'payments', attempts: 0, errorCode: 'TRELLIS_E_CIRCUIT_OPEN' }),
    ]);
    expect(fast).toEqual(slow);
    expect(JSON.parse(fast[0]!)).toMatchObject({ attempts: 0, retries: 0, error: 'TRELLIS_E_CIRCUIT_OPEN' });
  });
});
