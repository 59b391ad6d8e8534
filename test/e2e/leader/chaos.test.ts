import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openLeaseStore } from '../../../src/stores/lease/index.js';
import type { Lease } from '../../../src/stores/types.js';
import { serviceUrl, type TestService } from '../../../src/testing/services.js';
import { type CliProcess, ROOT, runCli, spawnCli, tempDir, waitUntil } from '../support/index.js';
import { type CutProxy, startCutProxy } from './cut-proxy.js';

/**
 * Leader election end to end: five `trellis leader run` candidates whose command appends its
 * fencing token to a PostgreSQL table guarded by PostgresFence. Leaders are SIGKILLed, frozen
 * with SIGSTOP past their lease and resumed, cut off from the store, and stopped gracefully.
 * The fenced table must never accept a stale token, and no two commands may share a token.
 */
const LEASE_MS = 1500;
const RENEW_DEADLINE_MS = 1000;
const RETRY_MS = 250;
// Generous slack for a shared, loaded 2-core machine: the bounds catch a broken election
// (waiting out many leases), not scheduling noise. The measured times are printed.
const SLACK_MS = 2500;
const FIXTURE = join(ROOT, 'test/e2e/leader/fixtures/fenced-writer.mjs');

const pgUrl = await serviceUrl('postgres');
const services: Record<string, string | undefined> = {};
for (const s of ['postgres', 'redis', 'etcd'] as TestService[]) services[s] = await serviceUrl(s);

const backends = [
  { name: 'sqlite', url: (dir: string) => `sqlite:${join(dir, 'leases.db')}` },
  { name: 'postgres', url: () => services.postgres },
  { name: 'redis', url: () => services.redis },
  { name: 'etcd', url: () => services.etcd },
];

interface Handover {
  backend: string;
  fault: string;
  ms: number;
  from: number;
  to: number;
}
const handovers: Handover[] = [];

function viaProxy(url: string, port: number): string {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
}

describe.skipIf(!pgUrl)('trellis leader run under faults (fenced resource in PostgreSQL)', () => {
  for (const backend of backends) {
    const probeUrl = backend.url('/nonexistent');
    it.skipIf(!probeUrl)(
      `${backend.name}: never accepts a stale token, never runs two commands with one token`,
      async () => {
        const dir = tempDir('trellis-leader-');
        const run = randomBytes(4).toString('hex');
        const group = `e2e-${backend.name}-${run}`;
        const t = { fence: `fence_${run}`, log: `fenced_log_${run}`, events: `command_events_${run}` };
        const storeUrl = backend.url(dir.path)!;
        const cuttable = backend.name !== 'sqlite';
        const pool = new pg.Pool({ connectionString: pgUrl, max: 4 });
        await pool.query(
          `CREATE TABLE ${t.log} (id bigserial PRIMARY KEY, token bigint NOT NULL, pid int NOT NULL)`,
        );
        await pool.query(
          `CREATE TABLE ${t.events} (id bigserial PRIMARY KEY, token bigint, pid int, identity text, kind text, at timestamptz DEFAULT clock_timestamp())`,
        );
        const store = await openLeaseStore(storeUrl);
        const proxies: CutProxy[] = [];
        const candidates: CliProcess[] = [];
        const writerEnv = {
          FENCE_PG_URL: pgUrl!,
          FENCE_TABLE: t.fence,
          LOG_TABLE: t.log,
          EVENTS_TABLE: t.events,
        };
        try {
          for (let i = 0; i < 5; i++) {
            let url = storeUrl;
            if (cuttable) {
              const u = new URL(storeUrl);
              const proxy = await startCutProxy(u.hostname, Number(u.port));
              proxies.push(proxy);
              url = viaProxy(storeUrl, proxy.port);
            }
            candidates.push(
              spawnCli(
                [
                  'leader',
                  'run',
                  '--group',
                  group,
                  '--store',
                  url,
                  '--identity',
                  `c${i}`,
                  '--lease',
                  `${LEASE_MS}ms`,
                  '--renew-deadline',
                  `${RENEW_DEADLINE_MS}ms`,
                  '--retry',
                  `${RETRY_MS}ms`,
                  '--grace',
                  '1s',
                  '--',
                  process.execPath,
                  FIXTURE,
                ],
                { env: writerEnv },
              ),
            );
          }
          const indexOf = (lease: Lease) => Number(lease.holder.slice(1));
          // The leader of this moment, once its command has written through the fence.
          const leaderWriting = () =>
            waitUntil<Lease | undefined>(
              async () => {
                const l = await store.read(group);
                if (!l) return undefined;
                const r = await pool.query(`SELECT 1 FROM ${t.log} WHERE token = $1 LIMIT 1`, [l.token]);
                return r.rowCount ? l : undefined;
              },
              'a leader whose command writes',
              20_000,
            ) as Promise<Lease>;
          const handover = async (fault: string, from: Lease, t0: number) => {
            const next = (await waitUntil<Lease | undefined>(
              async () => {
                const l = await store.read(group);
                return l && l.token > from.token ? l : undefined;
              },
              `a new leader after ${fault}`,
              20_000,
            )) as Lease;
            const ms = Date.now() - t0;
            handovers.push({ backend: backend.name, fault, ms, from: from.token, to: next.token });
            return { next, ms };
          };

          // 1. One leader, writing; `trellis leader status` names it.
          const first = await leaderWriting();
          const status = await runCli(['leader', 'status', '--group', group, '--store', storeUrl, '--json']);
          const shown = JSON.parse(status.stdout) as { leader: Lease | null };
          // The leader may have changed meanwhile (a loaded machine); its token never goes back.
          expect(shown.leader?.token).toBeGreaterThanOrEqual(first.token);
          expect(shown.leader?.holder).toMatch(/^c[0-4]$/);

          // 2. SIGKILL: no release, the successor waits for the lease to lapse.
          let t0 = Date.now();
          candidates[indexOf(first)]!.child.kill('SIGKILL');
          const killed = await handover('SIGKILL', first, t0);
          expect(killed.ms).toBeLessThan(LEASE_MS + RETRY_MS + SLACK_MS);
          // The watchdog stops the dead supervisor's command (or the fence already refused it).
          await waitUntil(
            async () =>
              (
                await pool.query(
                  `SELECT 1 FROM ${t.events} WHERE token = $1 AND kind NOT IN ('start', 'refused')`,
                  [first.token],
                )
              ).rowCount,
            'the orphaned command to stop',
          );

          // 3. SIGSTOP past the lease, then SIGCONT: the frozen leader must step down on waking.
          const victim = await leaderWriting();
          const frozen = candidates[indexOf(victim)]!;
          t0 = Date.now();
          frozen.child.kill('SIGSTOP');
          await handover('SIGSTOP', victim, t0);
          await leaderWriting();
          const mark = frozen.output().length;
          frozen.child.kill('SIGCONT');
          await waitUntil(
            () => /stopped leading/.test(frozen.output().slice(mark)),
            'the resumed leader to step down',
          );

          // 4. Store connection cut: the leader must stop acting within its renew deadline.
          if (cuttable) {
            const latest = await leaderWriting();
            const idx = indexOf(latest);
            const cutOff = candidates[idx]!;
            const before = cutOff.output().length;
            t0 = Date.now();
            proxies[idx]!.cut();
            await waitUntil(
              () => /leadership ended/.test(cutOff.output().slice(before)),
              'the cut-off leader to stop its command',
            );
            const steppedDownMs = Date.now() - t0;
            expect(steppedDownMs).toBeLessThan(RENEW_DEADLINE_MS + SLACK_MS);
            await handover('store cut', latest, t0);
            handovers.push({
              backend: backend.name,
              fault: 'store cut: leader stepped down',
              ms: steppedDownMs,
              from: latest.token,
              to: latest.token,
            });
            proxies[idx]!.restore();
          }

          // 5. Graceful stop: the lease is released, the successor takes over at once.
          const last = await leaderWriting();
          t0 = Date.now();
          void candidates[indexOf(last)]!.stop('SIGTERM');
          const graceful = await handover('graceful', last, t0);
          expect(graceful.ms).toBeLessThan(1000 + SLACK_MS);
          await leaderWriting();

          // 6. A writer that still holds an old token (a process paused through all of the above)
          //    is refused by the fence and writes nothing.
          const stale = spawn(process.execPath, [FIXTURE], {
            env: {
              ...process.env,
              ...writerEnv,
              TRELLIS_FENCING_TOKEN: String(first.token),
              TRELLIS_LEADER_IDENTITY: 'stale',
            },
            stdio: 'ignore',
          });
          const code = await new Promise<number | null>((r) => stale.once('exit', (c) => r(c)));
          expect(code).toBe(3);
        } catch (err) {
          // Show what the candidates said: the election's own log explains most failures.
          for (const [i, c] of candidates.entries()) console.error(`--- c${i}\n${c.output().slice(-3000)}`);
          throw err;
        } finally {
          for (const c of candidates) c.child.kill('SIGCONT');
          await Promise.all(candidates.map((c) => c.stop('SIGTERM', 10_000)));
          // Commands orphaned by a SIGKILLed supervisor end when the fence refuses them; make sure.
          const orphans = await pool.query<{ pid: number }>(
            `SELECT pid FROM ${t.events} WHERE kind = 'start' AND pid NOT IN (SELECT pid FROM ${t.events} WHERE kind <> 'start')`,
          );
          for (const { pid } of orphans.rows) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {}
          }
          await Promise.all(proxies.map((p) => p.close()));
          await store.close();
        }

        // The fenced table, in commit order (the fence row lock serialises the guarded inserts).
        const log = (await pool.query<{ token: string }>(`SELECT token FROM ${t.log} ORDER BY id`)).rows.map(
          (r) => Number(r.token),
        );
        let stale = 0;
        for (let i = 1; i < log.length; i++) if (log[i]! < log[i - 1]!) stale++;
        expect(stale).toBe(0);
        const shared = await pool.query(
          `SELECT token FROM ${t.events} WHERE kind = 'start' AND identity <> 'stale' GROUP BY token HAVING count(*) > 1`,
        );
        expect(shared.rows).toEqual([]);
        const refused = await pool.query(`SELECT token FROM ${t.events} WHERE kind = 'refused'`);
        // At least the deliberately stale writer; a command still running when a successor wrote adds more.
        expect(refused.rowCount).toBeGreaterThan(0);
        console.log(
          `${backend.name}: ${log.length} fenced writes, ${new Set(log).size} terms, ${refused.rowCount} stale writes refused; handovers: ${handovers
            .filter((h) => h.backend === backend.name)
            .map((h) => `${h.fault} ${h.ms}ms`)
            .join(', ')}`,
        );
        await pool.query(`DROP TABLE IF EXISTS ${t.log}, ${t.events}, ${t.fence}`);
        await pool.end();
        dir.cleanup();
      },
    );
  }
});
