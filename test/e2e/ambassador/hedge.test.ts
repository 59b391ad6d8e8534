import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AmbassadorProcess,
  type Origin,
  startAmbassadorCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

const run = promisify(execFile);

/**
 * Hedging through the real CLI: a slow upstream beside a fast one (the hedge wins, the slow
 * attempt is aborted and counted `cancelled`), and two slow upstreams (the retry budget caps
 * the hedges, so a slowness shared by all is not doubled).
 */

/** An origin that answers after `ms`, and counts the answers it could not finish (aborted). */
async function slowOrigin(name: string, ms: number): Promise<Origin & { aborted: () => number }> {
  let aborted = 0;
  const o = await startOrigin(name, (_req, res: ServerResponse) => {
    const timer = setTimeout(() => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(name);
    }, ms);
    res.once('close', () => {
      if (!res.writableFinished) {
        aborted++;
        clearTimeout(timer);
      }
    });
  });
  return Object.assign(o, { aborted: () => aborted });
}

// Sends COUNT sequential GETs and prints {"statuses": {...}, "ms": [...]}, from Python's standard library.
const PYTHON_CLIENT = `
import json, sys, time, urllib.request
url, count = sys.argv[1], int(sys.argv[2])
statuses, ms = {}, []
for _ in range(count):
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read(); code = r.status
    ms.append((time.monotonic() - start) * 1000)
    statuses[code] = statuses.get(code, 0) + 1
print(json.dumps({"statuses": statuses, "ms": ms}))
`;

async function python(url: string, count: number) {
  const { stdout } = await run('python3', ['-c', PYTHON_CLIENT, url, String(count)]);
  return JSON.parse(stdout) as { statuses: Record<string, number>; ms: number[] };
}

const p99 = (ms: number[]) => [...ms].sort((a, b) => a - b)[Math.floor(ms.length * 0.99)]!;

describe('trellis ambassador: hedging', () => {
  let dir: TempDir;
  let amb: AmbassadorProcess;
  let ports: Record<string, number>;
  let slow: Awaited<ReturnType<typeof slowOrigin>>;
  let fast: Awaited<ReturnType<typeof slowOrigin>>;
  let slowA: Awaited<ReturnType<typeof slowOrigin>>;
  let slowB: Awaited<ReturnType<typeof slowOrigin>>;
  let failing: Origin;
  let late: Origin;
  let lateStatus = 200;
  const url = (remote: string, path = '/') => `http://127.0.0.1:${ports[remote]}${path}`;
  const metrics = async () => (await fetch(url('admin', '/metrics'))).text();
  const counter = (text: string, line: RegExp) => Number(text.match(line)?.[1] ?? 0);

  beforeAll(async () => {
    dir = tempDir();
    slow = await slowOrigin('slow', 400);
    fast = await slowOrigin('fast', 0);
    slowA = await slowOrigin('slowA', 150);
    slowB = await slowOrigin('slowB', 150);
    // Answers 503 after 60 ms; `late` answers lateStatus after 120 ms.
    failing = await startOrigin('failing', (_req, res) => {
      setTimeout(() => res.writeHead(503, { 'x-origin': 'failing' }).end('down'), 60);
    });
    late = await startOrigin('late', (_req, res) => {
      setTimeout(
        () =>
          res
            .writeHead(lateStatus, { 'content-type': 'text/plain', 'x-origin': 'late', 'retry-after': '7' })
            .end('late'),
        120,
      );
    });
    const file = `${dir.path}/ambassador.yaml`;
    const pair = `upstreams: ['${slow.url}', '${fast.url}']
      outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 }`;
    writeFileSync(
      file,
      `remotes:
  plain:
    listen: { port: 0 }
    service:
      ${pair}
  hedged:
    listen: { port: 0 }
    hedge: { after: 30ms }
    service:
      ${pair}
      retry: { budget: { ratio: 0.5, minPerSecond: 1000 } }
  p95:
    listen: { port: 0 }
    hedge: { after: p95, min: 20ms, max: 100ms }
    service:
      ${pair}
      retry: { budget: { ratio: 0.5, minPerSecond: 1000 } }
  deadline:
    listen: { port: 0 }
    timeout: 100ms
    perTryTimeout: 0s
    hedge: { after: 20ms }
    service:
      upstreams: ['${slowA.url}', '${slow.url}']
      retry: { budget: { ratio: 0.5, minPerSecond: 1000 } }
  failFirst:
    listen: { port: 0 }
    hedge: { after: 20ms }
    service:
      upstreams: ['${failing.url}', '${late.url}']
      outlier: { consecutive5xx: 0, consecutiveConnectFailures: 0 }
      retry: { attempts: 2, budget: { ratio: 0.5, minPerSecond: 1000 } }
    breaker: { consecutiveFailures: 0, failureRatio: 0 }
  everyoneSlow:
    listen: { port: 0 }
    hedge: { after: 10ms }
    service:
      upstreams: ['${slowA.url}', '${slowB.url}']
      retry: { budget: { ratio: 0.2, minPerSecond: 0 } }
`,
    );
    amb = await startAmbassadorCli(file);
    ports = amb.ports;
  }, 30_000);

  afterAll(async () => {
    await amb?.stop();
    await Promise.all([slow, fast, slowA, slowB, failing, late].map((o) => o?.close()));
    dir?.cleanup();
  });

  it('a slow upstream beside a fast one: the hedge wins, p99 drops, the loser is cancelled', async () => {
    const plain = await python(url('plain'), 20);
    expect(plain.statuses).toEqual({ 200: 20 });
    // Round robin: every other call waits for the slow upstream.
    expect(p99(plain.ms)).toBeGreaterThan(390);

    const abortedBefore = slow.aborted();
    const hedged = await python(url('hedged'), 40);
    expect(hedged.statuses).toEqual({ 200: 40 });
    // The slow calls are hedged after 30 ms to the fast upstream: no call waits 400 ms.
    expect(p99(hedged.ms)).toBeLessThan(250);
    const text = await metrics();
    const sent = counter(text, /trellis_ambassador_hedges_total\{remote="hedged",outcome="sent"\} (\d+)/);
    const won = counter(text, /trellis_ambassador_hedges_total\{remote="hedged",outcome="won"\} (\d+)/);
    expect(sent).toBeGreaterThanOrEqual(15);
    expect(won).toBeGreaterThanOrEqual(15);
    // Each losing attempt was aborted: the slow origin saw its connection close mid-answer, and the
    // attempt is counted cancelled, not as the upstream's failure (its breaker stays closed).
    expect(slow.aborted() - abortedBefore).toBeGreaterThanOrEqual(15);
    const cancelled = counter(
      text,
      new RegExp(
        `trellis_ambassador_attempts_total\\{remote="hedged",upstream="${slow.url}",outcome="cancelled"\\} (\\d+)`,
      ),
    );
    expect(cancelled).toBeGreaterThanOrEqual(15);
    const services = (await (await fetch(url('admin', '/admin/services'))).json()) as {
      services: {
        name: string;
        policies: { policy: string }[];
        upstreams: { id: string; breaker: string; ejected: boolean; source: string }[];
        hedges?: { sent: number; won: number; budget: number };
      }[];
    };
    const remote = services.services.find((s) => s.name === 'hedged')!;
    // The admin API counts the remote's hedges as the metrics do; a remote without hedge has none.
    expect(remote.hedges).toEqual({ sent, won, budget: 0 });
    expect(services.services.find((s) => s.name === 'plain')!.hedges).toBeUndefined();
    expect(remote.upstreams.map((u) => u.source)).toEqual(['static', 'static']);
    // The dashboard panel shows them too: hedges sent and won, each upstream's source.
    const panels = (await (await fetch(url('admin', '/admin/panels'))).json()) as {
      panels: { kind: string; data: { remotes: Record<string, unknown>[] } }[];
    };
    const panel = panels.panels.find((p) => p.kind === 'ambassador')!.data.remotes;
    expect(panel.find((r) => r.name === 'hedged')).toMatchObject({
      hedges: { sent, won },
      upstreams: [{ source: 'static' }, { source: 'static' }],
    });
    expect(remote.policies.map((p) => p.policy)).toEqual([
      'deadline',
      'bulkhead',
      'bodyBuffer',
      'breaker',
      'perTryTimeout',
      'hedge',
      'retry',
    ]);
    for (const u of remote.upstreams)
      expect({ id: u.id, breaker: u.breaker, ejected: u.ejected }).toEqual({
        id: u.id,
        breaker: 'closed',
        ejected: false,
      });
  }, 60_000);

  it('after: p95 hedges once the window knows the remote (within min and max)', async () => {
    const r = await python(url('p95'), 60);
    expect(r.statuses).toEqual({ 200: 60 });
    // The first calls wait `max` (100 ms) before hedging, later ones the p95 (floored at 20 ms).
    expect(Math.max(...r.ms)).toBeLessThan(300);
    const text = await metrics();
    expect(
      counter(text, /trellis_ambassador_hedges_total\{remote="p95",outcome="won"\} (\d+)/),
    ).toBeGreaterThan(20);
  }, 60_000);

  it('every upstream slow: the retry budget caps the hedges (no load doubling)', async () => {
    const before = slowA.requests.length + slowB.requests.length;
    const offered = 60;
    // Eight clients at once so the budget's window sees the load.
    const results = await Promise.all(
      Array.from({ length: 6 }, () => python(url('everyoneSlow'), offered / 6)),
    );
    for (const r of results) expect(r.statuses).toEqual({ 200: offered / 6 });
    const sentToOrigins = slowA.requests.length + slowB.requests.length - before;
    // Every call would be hedged (150 ms > 10 ms); the 20 % budget lets few of them go.
    expect(sentToOrigins).toBeLessThanOrEqual(offered * 1.2 + 1);
    const text = await metrics();
    expect(
      counter(text, /trellis_ambassador_hedges_total\{remote="everyoneSlow",outcome="budget"\} (\d+)/),
    ).toBeGreaterThan(offered / 2);
  }, 60_000);

  it('the total deadline holds with a hedge out: both attempts are cut at 100 ms', async () => {
    const before = slow.aborted() + slowA.aborted();
    for (let i = 0; i < 3; i++) {
      const r = await run('curl', [
        '-s',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code} %{time_total}',
        url('deadline'),
      ]);
      const [code, seconds] = r.stdout.split(' ');
      expect(code).toBe('504');
      expect(Number(seconds) * 1000).toBeLessThan(100 + 100);
    }
    // Each call's first attempt and its hedge were both aborted at the deadline.
    await new Promise((r) => setTimeout(r, 100));
    expect(slow.aborted() + slowA.aborted() - before).toBe(6);
  }, 30_000);

  it('the first attempt fails while its hedge is out: the hedge answers; both fail: no further retry, the last answer is relayed', async () => {
    // Round robin starts on `failing` every other call: take the calls that did.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', url('failFirst')]);
      statuses.push(Number(r.stdout));
    }
    expect(statuses).toEqual([200, 200, 200, 200]);
    lateStatus = 503;
    // Whichever upstream the call starts on, the client gets the last failed answer as the
    // remote gave it (status, headers, body), not a problem made up by the ambassador: also when
    // the first attempt's 503 was dropped while the hedge raced and the hedge then failed too.
    for (let i = 0; i < 4; i++) {
      const before = failing.requests.length + late.requests.length;
      const r = await fetch(url('failFirst'));
      expect({
        status: r.status,
        origin: r.headers.get('x-origin'),
        retryAfter: r.headers.get('retry-after'),
        type: r.headers.get('content-type'),
        body: await r.text(),
      }).toEqual({ status: 503, origin: 'late', retryAfter: '7', type: 'text/plain', body: 'late' });
      // Two attempts in all (attempts: 2): the first and its hedge, no retry on top.
      expect(failing.requests.length + late.requests.length - before).toBe(2);
    }
    lateStatus = 200;
  }, 30_000);

  it('a POST is never hedged unless the remote opts in', async () => {
    const r = await run('curl', [
      '-s',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{time_total}',
      '-X',
      'POST',
      '-d',
      'x',
      url('hedged'),
    ]);
    const [code] = r.stdout.split(' ');
    expect(code).toBe('200');
    const text = await metrics();
    const sentBefore = counter(
      text,
      /trellis_ambassador_hedges_total\{remote="hedged",outcome="sent"\} (\d+)/,
    );
    for (let i = 0; i < 4; i++)
      await run('curl', ['-s', '-o', '/dev/null', '-X', 'POST', '-d', 'x', url('hedged')]);
    const after = counter(
      await metrics(),
      /trellis_ambassador_hedges_total\{remote="hedged",outcome="sent"\} (\d+)/,
    );
    expect(after).toBe(sentBefore);
  }, 30_000);
});
