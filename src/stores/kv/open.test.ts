import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import { openLeaseStore } from '../lease/index.js';
import { openKeyValueStore } from './index.js';

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    const s = (await p) as { close(): Promise<void> };
    await s.close();
  } catch (err) {
    if (!isTrellisError(err)) throw new Error(`untyped error: ${String(err)}`);
    return { code: err.code, message: err.message };
  }
  throw new Error('expected a failure');
}

const dir = mkdtempSync(join(tmpdir(), 'trellis-open-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.each([
  ['openKeyValueStore', openKeyValueStore],
  ['openLeaseStore', openLeaseStore],
] as const)('%s: bad input gets a typed error that says what to fix', (_name, open) => {
  it('rejects a string that is not a URL', async () => {
    const f = await failure(open('./data/trellis.db'));
    expect(f.code).toBe('TRELLIS_E_STORE_URL_INVALID');
    expect(f.message).toMatch(/sqlite:/);
  });

  it('rejects an unknown scheme and lists the ones it has', async () => {
    const f = await failure(open('mongodb://127.0.0.1/x'));
    expect(f.code).toBe('TRELLIS_E_STORE_UNSUPPORTED');
    expect(f.message).toMatch(/memory, sqlite, postgres, redis, etcd/);
  });

  it('rejects bad URL options', async () => {
    expect((await failure(open(`sqlite:${join(dir, 'a.db')}?table=drop;table`))).code).toBe(
      'TRELLIS_E_STORE_URL_INVALID',
    );
    expect((await failure(open('sqlite:'))).code).toBe('TRELLIS_E_STORE_URL_INVALID');
    expect((await failure(open('etcd://'))).code).toBe('TRELLIS_E_STORE_URL_INVALID');
  });

  it('an SQLite path that cannot be created is unavailable, with a hint', async () => {
    // A regular file where a folder should be: nothing can be created below it.
    writeFileSync(join(dir, 'not-a-folder'), '');
    const f = await failure(open(`sqlite:${join(dir, 'not-a-folder', 'nope.db')}`));
    expect(f.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    expect(f.message).toMatch(/writable/);
  });

  it.each(['postgres', 'redis', 'etcd'])(
    'an unreachable %s server is unavailable, naming where',
    async (scheme) => {
      const port = await closedPort();
      const url = `${scheme}://user:s3cret@127.0.0.1:${port}${scheme === 'postgres' ? '/db' : ''}`;
      const f = await failure(open(url));
      expect(f.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
      expect(f.message).toMatch(/connection refused|cannot connect/);
      expect(f.message).toContain(`127.0.0.1:${port}`);
      expect(f.message).not.toContain('s3cret');
    },
  );

  it('memory: and sqlite: open and work', async () => {
    for (const url of ['memory:', `sqlite:${join(dir, 'ok.db')}`]) {
      const s = await open(url);
      expect((await s.health()).ok).toBe(true);
      await s.close();
    }
  });
});
