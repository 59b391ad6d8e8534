import { spawn } from 'node:child_process';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CLI,
  freePort,
  type Origin,
  ROOT,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

// The access log is buffered and written asynchronously: no line is lost on SIGTERM, and a
// destination that cannot keep up costs dropped (and counted) lines, never blocked requests.

/** Sends `count` GETs over `connections` keep-alive connections; resolves with the status codes. */
async function burst(
  url: string,
  path: (i: number) => string,
  count: number,
  connections = 8,
): Promise<number[]> {
  const pool = new Pool(url, { connections });
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < count) {
        const i = next++;
        const r = await pool.request({ path: path(i), method: 'GET' });
        await r.body.dump();
        statuses.push(r.statusCode);
      }
    }),
  );
  await pool.close();
  return statuses;
}

describe('trellis gateway: access log', () => {
  let dir: TempDir;
  let origin: Origin;

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('origin');
  });

  afterAll(async () => {
    await origin?.close();
    dir?.cleanup();
  });

  const config = (port: number, workers = 1) => `listen: { port: ${port}, host: 127.0.0.1 }
workers: ${workers}
services:
  origin: { upstreams: ['${origin.url}'] }
routes:
  - match: { pathPrefix: /log }
    proxy: { service: origin }
`;

  for (const workers of [1, 2]) {
    it(`writes every access line before exiting on SIGTERM (workers: ${workers})`, async () => {
      const gw = await startGatewayCli(`${dir.path}/gateway-${workers}.yaml`, config(0, workers));
      const count = 500;
      const statuses = await burst(gw.url, (i) => `/log/line-${i}`, count);
      expect(statuses.filter((s) => s === 200)).toHaveLength(count);
      // Straight after the last answer, while lines may still sit in the buffers.
      expect(await gw.stop('SIGTERM')).toBe(0);
      const lines = new Set(
        gw
          .output()
          .split('\n')
          .filter((l) => l.includes('"msg":"access"'))
          .map((l) => (JSON.parse(l) as { path: string }).path),
      );
      expect(lines.size).toBe(count);
      for (let i = 0; i < count; i++) expect(lines.has(`/log/line-${i}`)).toBe(true);
    });
  }

  it('drops and counts lines instead of blocking requests when nobody reads the log pipe', async () => {
    const port = await freePort();
    const admin = await freePort();
    const file = dir.write('blocked.yaml', config(port));
    // stderr is a pipe this test never reads: once its buffers are full, every write would block.
    const child = spawn(process.execPath, [CLI, 'gateway', '-c', file, '--admin', `127.0.0.1:${admin}`], {
      cwd: ROOT,
      env: { ...process.env, TRELLIS_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitUntil(
        async () => (await fetch(`http://127.0.0.1:${admin}/readyz`)).ok,
        'the gateway to start',
      );
      const count = 8_000;
      const started = Date.now();
      const statuses = await burst(
        `http://127.0.0.1:${port}`,
        (i) => `/log/blocked-${i}-${'x'.repeat(200)}`,
        count,
      );
      expect(statuses.filter((s) => s === 200)).toHaveLength(count);
      // Generous for a busy machine; a blocked log would stall the requests for good.
      expect(Date.now() - started).toBeLessThan(60_000);
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const dropped = Number(/^trellis_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1] ?? 0);
      expect(dropped).toBeGreaterThan(0);
      // Shutting down does not hang on the lines it cannot write.
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      child.stderr?.destroy();
    }
  });
});
