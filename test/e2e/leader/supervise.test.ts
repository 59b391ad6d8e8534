import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, spawnCli, tempDir } from '../support/index.js';

/**
 * `trellis leader run` as a supervisor: restarts with backoff and a crash-loop limit, a command
 * that cannot start, exit 0 as success, --once, signals reported by name; `trellis leader status`
 * exit codes and read-only opening. One candidate per group, on a fresh SQLite file each.
 */
const dir = tempDir('trellis-leader-supervise-');
afterAll(() => dir.cleanup());
let n = 0;
const fresh = () => {
  n += 1;
  return { group: `g${n}`, store: `sqlite:${join(dir.path, `leases-${n}.db`)}` };
};
// Short timings so each case takes a second or two; the deadlines below are generous.
const fast = ['--lease', '6s', '--renew-deadline', '4s', '--retry', '300ms'];

/** `trellis leader run` for one group and store with the short timings, then `extra`. */
const leaderRun = ({ group, store }: { group: string; store: string }, ...extra: string[]) =>
  spawnCli(['leader', 'run', '--group', group, '--store', store, ...fast, ...extra]);

/** The JSON log lines a `leader run` printed, parsed. */
function logLines(output: string): { msg: string; [k: string]: unknown }[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string });
}

describe('trellis leader run: restarts', () => {
  it('restarts a failing command with growing delays, then stops at the crash-loop limit (exit 4)', async () => {
    const target = fresh();
    const { group, store } = target;
    const proc = leaderRun(
      target,
      '--backoff',
      '100ms',
      '--backoff-max',
      '2s',
      '--max-restarts',
      '3',
      '--',
      process.execPath,
      '-e',
      'process.exit(3)',
    );
    const { code } = await proc.exited;
    expect(code, proc.output()).toBe(4);
    const lines = logLines(proc.output());
    const restarts = lines.filter((l) => /restarting in/.test(l.msg));
    expect(restarts.map((l) => l.delayMs)).toEqual([100, 200, 400]);
    expect(restarts[0]!.msg).toContain('exit 3');
    // Every run has a term of its own: a fresh fencing token each time.
    const tokens = lines.filter((l) => l.msg === 'leading: started the command').map((l) => l.token);
    expect(tokens).toHaveLength(4);
    expect(new Set(tokens).size).toBe(4);
    expect(proc.output()).toMatch(/crash loop: the command failed \d+ times in a row \(last: exit 3\)/);
    // The lease was released on the way out: nobody leads.
    const status = await runCli(['leader', 'status', '--group', group, '--store', store]);
    expect(status.code).toBe(3);
  });

  it('reports a command that cannot start and exits 127 at once, without restarting it', async () => {
    const target = fresh();
    const proc = leaderRun(target, '--', 'no-such-command-xyz');
    const { code } = await proc.exited;
    expect(code, proc.output()).toBe(127);
    const out = proc.output();
    expect(out).toContain('cannot start "no-such-command-xyz"');
    expect(out).toMatch(/cannot start the command \\"no-such-command-xyz\\": not found/);
    expect(out.match(/leading: started the command/g)).toHaveLength(1);
    expect(out).not.toMatch(/restarting in/);
  });

  it('treats exit 0 as success: logged as completed (not a warning), not rerun in the term', async () => {
    const { group, store } = fresh();
    const marker = join(dir.path, `ran-${group}`);
    const proc = spawnCli([
      'leader',
      'run',
      '--group',
      group,
      '--store',
      store,
      ...fast,
      '--',
      process.execPath,
      '-e',
      `require('fs').appendFileSync(${JSON.stringify(marker)}, 'x')`,
    ]);
    const line = await proc.waitForOutput(/the command completed \(exit 0\)/);
    expect(JSON.parse(line).level).toBe(30); // info
    // Still leading, and the command is not run again while the term lasts (several renewals).
    await proc.waitForOutput(/"msg":"started leading"/);
    const status = await runCli(['leader', 'status', '--group', group, '--store', store, '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout).leader).not.toBeNull();
    expect(proc.output()).not.toMatch(/"level":40/);
    expect(await proc.stop()).toBe(0);
    expect(proc.output().match(/leading: started the command/g)).toHaveLength(1);
    expect(existsSync(marker)).toBe(true);
  });

  it('--once: a failed run releases the lease and exits with the command status', async () => {
    const target = fresh();
    const { group, store } = target;
    const proc = leaderRun(target, '--once', '--', process.execPath, '-e', 'process.exit(9)');
    const { code } = await proc.exited;
    expect(code, proc.output()).toBe(9);
    expect(proc.output()).toMatch(/the command failed \(exit 9\); restart never/);
    expect((await runCli(['leader', 'status', '--group', group, '--store', store])).code).toBe(3);
  });

  it('reports a signal-killed command by its signal, not as code 128', async () => {
    const target = fresh();
    const proc = leaderRun(
      target,
      '--max-restarts',
      '0',
      '--',
      process.execPath,
      '-e',
      "process.kill(process.pid, 'SIGKILL')",
    );
    const { code } = await proc.exited;
    expect(code, proc.output()).toBe(4);
    const failed = logLines(proc.output()).find((l) => /crash loop/.test(l.msg))!;
    expect(failed).toMatchObject({ signal: 'SIGKILL', exitCode: null });
    expect(failed.msg).toContain('killed by SIGKILL');
    expect(proc.output()).not.toContain('"code":128');
  });

  it('refuses a bad restart policy as a usage error', async () => {
    const { group, store } = fresh();
    const r = await runCli([
      'leader',
      'run',
      '--group',
      group,
      '--store',
      store,
      '--restart',
      'sometimes',
      '--',
      'true',
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--restart must be on-failure, always or never');
  });
});

describe('trellis leader status', () => {
  it('exits 3 when the group has no leader, 0 when it has one', async () => {
    const target = fresh();
    const { group, store } = target;
    const proc = leaderRun(target, '--', 'sleep', '30');
    await proc.waitForOutput(/leading: started the command/);
    const leading = await runCli(['leader', 'status', '--group', group, '--store', store]);
    expect(leading.code).toBe(0);
    expect(leading.stdout).toContain('leader:');
    const other = await runCli(['leader', 'status', '--group', 'nobody', '--store', store]);
    expect(other.code).toBe(3);
    expect(other.stdout).toContain('group nobody: no leader');
    const json = await runCli(['leader', 'status', '--group', 'nobody', '--store', store, '--json']);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({ group: 'nobody', leader: null });
    expect(await proc.stop()).toBe(0);
  });

  it('says that a mistyped sqlite file does not exist, and creates neither folder nor file', async () => {
    const missing = join(dir.path, 'no-such-folder', 'leases.db');
    const r = await runCli(['leader', 'status', '--group', 'g', '--store', `sqlite:${missing}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TRELLIS_E_STORE_NOT_FOUND');
    expect(r.stderr).toContain(`${missing} does not exist`);
    expect(existsSync(join(dir.path, 'no-such-folder'))).toBe(false);
  });

  it('never suggests test-suite variables when the store is unreachable', async () => {
    const r = await runCli([
      'leader',
      'status',
      '--group',
      'g',
      '--store',
      'postgres://nobody@127.0.0.1:1/none',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TRELLIS_E_STORE_UNAVAILABLE');
    expect(r.stderr).not.toContain('TRELLIS_TEST_');
    expect(r.stderr).toContain('check the host, port');
  });
});
