import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { PostgresFence } from './postgres.js';

const url = await serviceUrl('postgres');

describe.skipIf(!url)('PostgresFence', () => {
  const suffix = randomBytes(4).toString('hex');
  const fences = `fence_${suffix}`;
  const log = `fenced_log_${suffix}`;
  let pool: pg.Pool;
  let fence: PostgresFence;

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: url, max: 8 });
    fence = new PostgresFence(pool, { table: fences });
    await pool.query(`CREATE TABLE ${log} (id serial PRIMARY KEY, token bigint NOT NULL)`);
  });
  afterAll(async () => {
    await pool.query(`DROP TABLE IF EXISTS ${log}, ${fences}`);
    await pool.end();
  });

  const write = (token: number) =>
    fence.guard('job', token, (c) => c.query(`INSERT INTO ${log} (token) VALUES ($1)`, [token]));
  const rows = async () =>
    (await pool.query(`SELECT token FROM ${log} ORDER BY id`)).rows.map((r) => Number(r.token));

  it('accepts the current token and newer ones, refuses older ones and writes nothing for them', async () => {
    await write(3);
    await write(3);
    await write(5);
    await expect(write(4)).rejects.toMatchObject({ code: 'TRELLIS_E_FENCING_TOKEN_STALE' });
    await expect(write(4)).rejects.toThrow(/older than the last one seen \(5\)/);
    expect(await rows()).toEqual([3, 3, 5]);
    expect(await fence.lastToken('job')).toBe(5);
    expect(await fence.lastToken('other')).toBeUndefined();
  });

  it('rolls back the fence bump when the guarded write fails', async () => {
    await expect(
      fence.guard('job2', 9, async (c) => {
        await c.query(`INSERT INTO ${log} (token) VALUES (9)`);
        throw new Error('write failed');
      }),
    ).rejects.toThrow('write failed');
    expect(await fence.lastToken('job2')).toBeUndefined();
    expect(await rows()).not.toContain(9);
  });

  it('never lets a stale write commit after a newer one, under concurrency', async () => {
    const tokens = Array.from({ length: 40 }, (_, i) => 100 + (i % 10));
    const results = await Promise.allSettled(tokens.map((t) => write(t)));
    const accepted = (await rows()).filter((t) => t >= 100);
    // In commit order, accepted tokens never go down.
    for (let i = 1; i < accepted.length; i++) expect(accepted[i]!).toBeGreaterThanOrEqual(accepted[i - 1]!);
    expect(accepted).toContain(109);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(accepted.length);
  });

  it('refuses a table name that is not an identifier', () => {
    expect(() => new PostgresFence(pool, { table: 'x; drop table y' })).toThrow(/not a plain SQL identifier/);
  });
});
