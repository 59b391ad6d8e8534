import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  type GatewayProcess,
  runCli,
  startGatewayCli,
  tempDir,
  waitUntil,
} from '../support/index.js';

// The Strangler Fig through the real `trellis gateway` and `trellis strangler`: a legacy and a
// modern origin, the modern one switched between healthy, down, hanging, 500s and garbage; two
// gateway instances sharing the migration state in one SQLite file.

type Behaviour = 'ok' | 'reset' | 'hang' | '500' | 'garbage';

interface Seen {
  method: string;
  url: string;
  shadow: string | undefined;
  body: number;
}

function origin(
  answer: (req: IncomingMessage, res: ServerResponse, body: Buffer, size: number) => void,
): Promise<{ url: string; seen: Seen[]; close(): Promise<void>; server: Server }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // An upload is hashed as it arrives, never held: the origin answers its length and SHA-256.
    const hash = req.url === '/upload' ? createHash('sha256') : undefined;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (hash === undefined) chunks.push(c);
      else {
        hash.update(c);
        if (size === c.length) upload.first?.(size);
        if (upload.pauseAt !== undefined && size >= upload.pauseAt) {
          // Stops reading (as a slow origin would): a streaming gateway stops reading the client.
          upload.pauseAt = undefined;
          req.pause();
          upload.paused?.({ received: size, resume: () => req.resume() });
        }
      }
    });
    req.on('end', () => {
      seen.push({
        method: req.method!,
        url: req.url!,
        shadow: req.headers['x-trellis-shadow'] as string,
        body: size,
      });
      answer(req, res, hash === undefined ? Buffer.concat(chunks) : Buffer.from(hash.digest('hex')), size);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
        seen,
        server,
        close: () =>
          new Promise<void>((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    ),
  );
}

/** Hooks into the legacy origin's upload: its first bytes, and a pause once `pauseAt` arrived. */
const upload: {
  first?: (n: number) => void;
  pauseAt?: number | undefined;
  paused?: (p: { received: number; resume: () => void }) => void;
} = {};

/** A process's resident set size in bytes (Linux /proc). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Shadow copies of the upload route dropped for their body's size, from the gateway's metrics. */
async function shadowSkippedBody(adminUrl: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('trellis_strangler_shadow_total{') && /route="upload",outcome="skipped_body"/.test(l),
    );
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const json = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

describe('strangler: routes through trellis gateway', () => {
  const tmp = tempDir('trellis-strangler-');
  let legacy: Awaited<ReturnType<typeof origin>>;
  let modern: Awaited<ReturnType<typeof origin>>;
  let behaviour: Behaviour = 'ok';
  const hanging: ServerResponse[] = [];
  let a: GatewayProcess;
  let b: GatewayProcess;
  const store = () => `sqlite:${tmp.path}/state.db`;
  const cli = (...args: string[]) => runCli(['strangler', ...args, '--store', store()]);

  beforeAll(async () => {
    legacy = await origin((req, res, body, size) => {
      const url = req.url ?? '/';
      if (url === '/upload')
        return json(res, 200, { origin: 'legacy', bytes: size, sha256: body.toString() });
      json(res, 200, { origin: 'legacy', url, price: 10, at: Math.random(), echo: body.toString() });
    });
    modern = await origin((req, res, body) => {
      if (behaviour === 'reset') return req.socket.destroy();
      if (behaviour === 'hang') return void hanging.push(res);
      if (behaviour === '500') return json(res, 500, { error: 'boom' });
      if (behaviour === 'garbage') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"origin": "modern", garbage \u0000 {{{');
      }
      json(res, 200, { origin: 'modern', url: req.url, price: 11, at: Math.random(), echo: body.toString() });
    });
    const dead = await freePort();
    const yaml = `listen: { port: 0 }
stores:
  state: ${store()}
services:
  legacy: { upstreams: ['${legacy.url}'] }
  modern: { upstreams: ['${modern.url}'] }
  nowhere: { upstreams: ['http://127.0.0.1:${dead}'] }
routes:
  - name: catalog
    match: { path: /catalog/* }
    strangler:
      legacy: legacy
      modern: modern
      mode: shadow
      store: state
      sticky: { header: x-user }
      shadow: { timeout: 300ms }
      noise: { sample: 1 }
  - name: dead
    match: { path: /dead/* }
    strangler: { legacy: legacy, modern: nowhere, mode: shadow, store: state }
  - name: upload
    match: { path: /upload }
    strangler:
      legacy: legacy
      modern: modern
      mode: shadow
      store: state
      shadowUnsafe: true
      shadow: { maxBodySize: 64kb }
  - name: guarded
    match: { path: /guarded/* }
    strangler:
      legacy: legacy
      modern: modern
      store: state
      sticky: { header: x-user }
      guard: { maxErrorRate: 0.2, minSamples: 10, window: 30s }
`;
    [a, b] = await Promise.all([
      startGatewayCli(tmp.write('a.yaml', ''), yaml),
      startGatewayCli(tmp.write('b.yaml', ''), yaml),
    ]);
  }, 60_000);

  afterAll(async () => {
    // STRANGLER_DEBUG=1 prints the gateway's shadow and strangler log lines.
    if (process.env.STRANGLER_DEBUG)
      console.log(
        a
          ?.output()
          .split('\n')
          .filter((l) => /shadow|strangler|error/i.test(l))
          .slice(-80)
          .join('\n'),
      );
    for (const r of hanging) r.destroy();
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([legacy?.close(), modern?.close()]);
    tmp.cleanup();
  });

  const get = async (base: string, path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, { headers });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('in shadow mode answers every request from legacy whatever the modern side does', async () => {
    for (const mode of ['ok', 'reset', 'hang', '500', 'garbage'] as const) {
      behaviour = mode;
      const before = modern.seen.length;
      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => get(a.url, `/catalog/item-${i}`, { 'x-user': `u${i}` })),
      );
      expect(answers.map((r) => `${r.status} ${r.body.origin}`)).toEqual(Array(20).fill('200 legacy'));
      if (mode !== 'reset') await waitUntil(() => modern.seen.length >= before + 20, `copies (${mode})`);
    }
    const dead = await Promise.all(Array.from({ length: 10 }, (_, i) => get(a.url, `/dead/${i}`)));
    expect(dead.every((r) => r.status === 200 && r.body.origin === 'legacy')).toBe(true);
    behaviour = 'ok';
    // The copies carried the marker.
    expect(modern.seen.every((s) => s.shadow === '1')).toBe(true);
  }, 60_000);

  it('reports the mismatching fields, with learnt noise suppressed', async () => {
    behaviour = 'ok';
    await Promise.all(Array.from({ length: 10 }, (_, i) => get(a.url, `/catalog/p${i}`)));
    const report = await waitUntil(async () => {
      const r = await cli('report', 'catalog', '--json');
      const j = JSON.parse(r.stdout) as { fields?: { path: string; count: number }[]; noise?: string[] };
      return j.fields?.some((f) => f.path === 'price') && j.noise?.includes('at') ? j : undefined;
    }, 'the report to show price and the noise');
    expect(report.fields!.map((f) => f.path)).not.toContain('at');
    const text = await cli('report', 'catalog');
    expect(text.stdout).toMatch(/price\s+e\.g\. 10 -> 11/);
    expect(text.stdout).toMatch(/noise \(differs legacy against legacy, suppressed\): .*at/);
  }, 30_000);

  it('never sends a POST to both sides unless the route opts in', async () => {
    const res = await fetch(`${a.url}/catalog/orders`, { method: 'POST', body: '{"qty":1}' });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { origin: string }).origin).toBe('legacy');
    // A later GET's copy arrives; the POST's never did.
    await get(a.url, '/catalog/after-post');
    await waitUntil(() => modern.seen.some((s) => s.url === '/catalog/after-post'), 'the GET copy');
    expect(modern.seen.filter((s) => s.method === 'POST')).toEqual([]);
    expect(legacy.seen.filter((s) => s.method === 'POST' && s.url === '/catalog/orders')).toHaveLength(1);
  });

  it('tees a small body to an opted-in copy and streams a large upload without holding it', async () => {
    const small = await fetch(`${a.url}/upload`, { method: 'POST', body: 'x'.repeat(1000) });
    expect(small.status).toBe(200);
    await waitUntil(() => modern.seen.some((s) => s.url === '/upload' && s.body === 1000), 'the teed copy');
    // 50 MB (the size), sent in 1 MiB parts: the second only once legacy has received
    // the first bytes, which it cannot if the gateway waits for the whole body before forwarding.
    const size = 50 * 1024 * 1024;
    const part = 1024 * 1024;
    const first = new Promise<number>((r) => {
      upload.first = r;
    });
    // Legacy stops reading at 8 MiB: what the client could send meanwhile is what the gateway
    // (and the sockets between) hold at once, and its RSS then shows what it keeps. A gateway
    // reading the body ahead of legacy (to hold it for the primary or for its copy) would take
    // all 50 MB. (A peak RSS over the whole upload says little: V8 frees passed-through buffers
    // lazily, and a first 50 MB through even a plain proxy grows RSS by 30-45 MB.)
    upload.pauseAt = 8 * part;
    const paused = new Promise<{ received: number; resume: () => void }>((r) => {
      upload.paused = r;
    });
    const sentHash = createHash('sha256');
    let sent = 0;
    const body = new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          if (sent === 1) await first;
          if (sent * part >= size) return controller.close();
          // Each part its own bytes, so a lost, repeated or reordered part changes the hash.
          const chunk = Buffer.alloc(part, sent % 251);
          chunk.writeUInt32BE(sent, 0);
          sentHash.update(chunk);
          sent++;
          controller.enqueue(chunk);
        },
      },
      { highWaterMark: 0 },
    );
    const skippedBefore = await shadowSkippedBody(a.adminUrl);
    const rssBefore = rssOf(a.child.pid!);
    const response = fetch(`${a.url}/upload`, { method: 'POST', body, duplex: 'half' } as RequestInit);
    const stall = await paused;
    // Give the client time to push whatever the gateway would still take.
    let before = -1;
    while (before !== sent) {
      before = sent;
      await new Promise((r) => setTimeout(r, 300));
    }
    const inFlight = sent * part - stall.received;
    const rssGrowth = rssOf(a.child.pid!) - rssBefore;
    stall.resume();
    const res = await response;
    expect(res.status).toBe(200);
    const got = (await res.json()) as { bytes: number; sha256: string };
    expect(got.bytes).toBe(size);
    expect(got.sha256).toBe(sentHash.digest('hex'));
    const mb = (n: number) => `${(n / part).toFixed(1)} MB`;
    expect(inFlight, `held in flight: ${mb(inFlight)}`).toBeLessThan(size / 2);
    expect(rssGrowth, `the gateway's RSS grew ${mb(rssGrowth)} with ${mb(sent * part)} sent`).toBeLessThan(
      size / 2,
    );
    // The copy was dropped once the body passed shadow.maxBodySize (64 kB), and counted.
    expect(modern.seen.filter((s) => s.url === '/upload' && s.body > 1000)).toEqual([]);
    expect(await shadowSkippedBody(a.adminUrl)).toBe(skippedBefore + 1);
  }, 60_000);

  it('refuses a bad mode or weight and leaves the state as it was', async () => {
    expect((await cli('set', 'catalog', '--mode', 'shadow', '--reason', 'start')).code).toBe(0);
    const before = await cli('history', 'catalog', '--json');
    for (const args of [
      ['--mode', 'warp'],
      ['--mode', 'canary', '--weight', '150'],
      ['--mode', 'canary', '--weight', 'abc'],
    ]) {
      const r = await cli('set', 'catalog', ...args);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/TRELLIS_E_STRANGLER_STATE_INVALID: .*nothing changed/);
    }
    expect((await cli('history', 'catalog', '--json')).stdout).toBe(before.stdout);
  });

  it('two instances agree on every sticky decision over 10,000 keys, within a second of a change', async () => {
    behaviour = 'ok';
    const set = await runCli([
      'strangler',
      'set',
      'guarded',
      '--mode',
      'canary',
      '--weight',
      '30',
      '--force',
      '--store',
      store(),
    ]);
    expect(set.code, set.stderr).toBe(0);
    const changedAt = Date.now();
    const pools = [new Pool(a.url, { connections: 16 }), new Pool(b.url, { connections: 16 })];
    const side = async (pool: Pool, key: string) => {
      const r = await pool.request({ path: `/guarded/${key}`, method: 'GET', headers: { 'x-user': key } });
      return ((await r.body.json()) as { origin: string }).origin;
    };
    // Both instances follow the change within a second.
    await waitUntil(async () => {
      const seen = await Promise.all(pools.map((p) => side(p, 'probe-0')));
      const all = await Promise.all(Array.from({ length: 40 }, (_, i) => side(pools[i % 2]!, `probe-${i}`)));
      return seen.length === 2 && all.includes('modern') ? true : undefined;
    }, 'both gateways in canary');
    expect(Date.now() - changedAt).toBeLessThan(1000);
    const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
    const sides: string[][] = [[], []];
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500);
      const [x, y] = await Promise.all(pools.map((p) => Promise.all(batch.map((k) => side(p, k)))));
      sides[0]!.push(...x!);
      sides[1]!.push(...y!);
    }
    const disagreements = keys.filter((_, i) => sides[0]![i] !== sides[1]![i]);
    expect(disagreements).toEqual([]);
    const share = sides[0]!.filter((s) => s === 'modern').length / keys.length;
    expect(share).toBeGreaterThan(0.27);
    expect(share).toBeLessThan(0.33);
    await Promise.all(pools.map((p) => p.close()));
  }, 60_000);

  it('steps a failing canary back to shadow through the shared state', async () => {
    // A new canary step starts a new guard window on each instance.
    expect((await cli('set', 'guarded', '--weight', '40', '--force')).code).toBe(0);
    behaviour = '500';
    // Keep traffic flowing until every answer comes from legacy on both instances again.
    await waitUntil(
      async () => {
        const r = await Promise.all(
          [a, b].flatMap((g) =>
            Array.from({ length: 20 }, (_, i) => get(g.url, `/guarded/k${i}`, { 'x-user': `k${i}` })),
          ),
        );
        return r.every((x) => x.status === 200 && x.body.origin === 'legacy');
      },
      'the guard to step back',
      30_000,
    );
    const h = JSON.parse((await cli('history', 'guarded', '--json')).stdout) as {
      mode: string;
      by: string;
      reason?: string;
    }[];
    expect(h.at(-1)).toMatchObject({
      mode: 'shadow',
      by: 'guard',
      reason: expect.stringMatching(/modern error rate/),
    });
    // One step back, not one per instance.
    expect(h.filter((x) => x.by === 'guard')).toHaveLength(1);
    behaviour = 'ok';
    const status = await runCli(['strangler', 'status', '--store', store(), '--admin', a.adminUrl]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/guarded\s+shadow/);
    expect(status.stdout).toMatch(/catalog\s+shadow/);
  }, 60_000);

  it('retires a route with a 410 problem', async () => {
    expect((await cli('set', 'dead', '--mode', 'retired', '--force')).code).toBe(0);
    await waitUntil(async () => (await fetch(`${a.url}/dead/x`)).status === 410, 'the 410');
    // The state reaches b within a second: read its answer once it has it, not before.
    await waitUntil(async () => (await fetch(`${b.url}/dead/x`)).status === 410, 'the 410 on b');
    const res = await fetch(`${b.url}/dead/x`);
    expect(res.status).toBe(410);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
  });
});
