/**
 * `npm run bench -- leader [sqlite,postgres,redis,etcd] [--n 20] [--lease 2s] [--renew 1500ms] [--retry 500ms]`:
 * leader handover time on every LeaseStore backend, as distributions over n handovers each:
 *
 * - graceful: the leader stops (releases its lease) → target <= 1 s;
 * - crash: the leader's process dies without releasing (here: its store connection is closed
 *   mid-term, so it can neither renew nor release, which is what the lease sees of a SIGKILL)
 *   → target <= leaseDuration + retryPeriod.
 *
 * Three candidates in this process, each with its own store connection. A handover is the time
 * from the fault until another candidate's onStartedLeading runs. Bounded: n handovers, each
 * with a 30 s deadline. (test/e2e/leader records the same with real processes and SIGKILL.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/core/units.js';
import { LeaderElector } from '../src/leader/elector.js';
import { openLeaseStore } from '../src/stores/lease/index.js';
import type { LeaseStore } from '../src/stores/types.js';
import { serviceUrl } from '../src/testing/services.js';
import { table } from './_support/table.js';

const { values, positionals } = parseArgs({
  options: {
    n: { type: 'string' },
    lease: { type: 'string' },
    renew: { type: 'string' },
    retry: { type: 'string' },
  },
  allowPositionals: true,
});
const N = Number(values.n ?? 20);
const timing = {
  leaseDuration: parseDuration(values.lease ?? '2s'),
  renewDeadline: parseDuration(values.renew ?? '1500ms'),
  retryPeriod: parseDuration(values.retry ?? '500ms'),
};
const wanted = (positionals[0] ?? 'sqlite,postgres,redis,etcd').split(',');

interface Candidate {
  elector: LeaderElector;
  store: LeaseStore;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measure(url: string) {
  const group = `bench-${Math.random().toString(36).slice(2, 8)}`;
  let onLead: ((c: Candidate) => void) | undefined;
  const candidates = new Set<Candidate>();
  const spawn = async (i: number) => {
    const store = await openLeaseStore(url);
    const c: Candidate = { store, elector: undefined as unknown as LeaderElector };
    c.elector = new LeaderElector({
      store,
      group,
      identity: `cand-${i}`,
      ...timing,
      onStartedLeading: (ctx) => {
        onLead?.(c);
        return new Promise((r) => ctx.signal.addEventListener('abort', r, { once: true }));
      },
    });
    candidates.add(c);
    c.elector.start();
    return c;
  };
  const nextLeader = (except: Candidate) =>
    new Promise<Candidate>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no handover within 30 s')), 30_000);
      onLead = (c) => {
        if (c === except) return;
        clearTimeout(timer);
        onLead = undefined;
        resolve(c);
      };
      const already = [...candidates].find((c) => c !== except && c.elector.isLeader);
      if (already) onLead(already);
    });
  let id = 0;
  for (; id < 3; id++) await spawn(id);
  let leader = await new Promise<Candidate>((resolve) => {
    onLead = resolve;
    const already = [...candidates].find((c) => c.elector.isLeader);
    if (already) resolve(already);
  });
  const graceful: number[] = [];
  const crash: number[] = [];
  try {
    for (const kind of ['graceful', 'crash'] as const) {
      for (let i = 0; i < N; i++) {
        const old = leader;
        const next = nextLeader(old);
        const t0 = performance.now();
        if (kind === 'graceful') {
          await old.elector.stop();
        } else {
          await old.store.close();
        }
        leader = await next;
        (kind === 'graceful' ? graceful : crash).push(performance.now() - t0);
        candidates.delete(old);
        if (kind === 'crash') await old.elector.stop();
        await old.store.close();
        await spawn(id++);
      }
    }
  } finally {
    for (const c of candidates) {
      await c.elector.stop();
      await c.store.close();
    }
  }
  graceful.sort((a, b) => a - b);
  crash.sort((a, b) => a - b);
  return { graceful, crash };
}

const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-leader-'));
const rows: (string | number)[][] = [];
const crashTarget = timing.leaseDuration + timing.retryPeriod;
try {
  for (const backend of wanted) {
    const url =
      backend === 'sqlite'
        ? `sqlite:${join(dir, 'leases.db')}`
        : await serviceUrl(backend as 'postgres' | 'redis' | 'etcd');
    if (!url) {
      console.log(`${backend}: not reachable, skipped`);
      continue;
    }
    process.stdout.write(`${backend}: ${N} graceful + ${N} crash handovers… `);
    const { graceful, crash } = await measure(url);
    console.log('done');
    for (const [kind, xs, target] of [
      ['graceful', graceful, 1000],
      ['crash', crash, crashTarget],
    ] as const) {
      rows.push([
        backend,
        kind,
        xs.length,
        pct(xs, 50),
        pct(xs, 90),
        xs.at(-1)!,
        `${xs.at(-1)! <= target ? 'PASS' : 'MISS'} max <= ${target}`,
      ]);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  `\nLeader handover (ms), leaseDuration ${timing.leaseDuration} / renewDeadline ${timing.renewDeadline} / retryPeriod ${timing.retryPeriod}, 3 candidates\n`,
);
console.log(table(['backend', 'handover', 'n', 'p50 ms', 'p90 ms', 'max ms', 'target'], rows));
process.exit(0);
