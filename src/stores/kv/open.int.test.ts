import { describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import { serviceUrl } from '../../testing/services.js';
import { openLeaseStore } from '../lease/index.js';
import { openKeyValueStore } from './index.js';

async function failure(p: Promise<{ close(): Promise<void> }>): Promise<{ code: string; message: string }> {
  try {
    await (await p).close();
  } catch (err) {
    if (!isTrellisError(err)) throw new Error(`untyped error: ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  throw new Error('expected a failure');
}

const pg = await serviceUrl('postgres');
const etcd = await serviceUrl('etcd');

describe.skipIf(!pg)('postgres: wrong credentials and names say what to fix', () => {
  const u = new URL(pg!);
  it.each([openKeyValueStore, openLeaseStore])('an unknown user or database (%#)', async (open) => {
    const badUser = new URL(u);
    badUser.username = 'trellis_no_such_user';
    badUser.password = 'hunter2';
    const f = await failure(open(badUser.toString()));
    expect(f.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    expect(f.message).toMatch(/authentication failed: check the user and password/);
    expect(f.message).not.toContain('hunter2');
    const badDb = new URL(u);
    badDb.pathname = '/trellis_no_such_db';
    expect((await failure(open(badDb.toString()))).message).toMatch(/database does not exist/);
  });
});

describe.skipIf(!etcd)('etcd: credentials the cluster does not accept say so', () => {
  it.each([openKeyValueStore, openLeaseStore])('user and password (%#)', async (open) => {
    const f = await failure(open(etcd!.replace('etcd://', 'etcd://trellis:hunter2@')));
    expect(f.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    expect(f.message).toMatch(/auth/);
    expect(f.message).not.toContain('hunter2');
  });
});
