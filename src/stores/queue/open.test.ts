import { describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import { openMessageQueue } from './index.js';

/** The error openMessageQueue rejects with, as code and message. */
async function failure(url: string) {
  try {
    const q = await openMessageQueue(url);
    await q.close();
    return { code: 'no error', message: '' };
  } catch (err) {
    if (!isTrellisError(err)) return { code: `raw ${String(err)}`, message: '' };
    return { code: err.code, message: err.message };
  }
}

describe('openMessageQueue', () => {
  it('rejects what is not a queue URL, naming the forms that are', async () => {
    expect(await failure('nope')).toMatchObject({ code: 'TRELLIS_E_STORE_URL_INVALID', message: /sqlite:/ });
    expect(await failure('postgres://127.0.0.1/test')).toMatchObject({
      code: 'TRELLIS_E_STORE_UNSUPPORTED',
      message: /memory, sqlite, redis, nats/,
    });
    expect(await failure('sqlite:')).toMatchObject({
      code: 'TRELLIS_E_STORE_URL_INVALID',
      message: /names no file/,
    });
  });

  it('rejects unknown and malformed URL options', async () => {
    expect(await failure('memory:?dedupe=5m')).toMatchObject({
      code: 'TRELLIS_E_STORE_URL_INVALID',
      message: /unknown option dedupe/,
    });
    expect(await failure('memory:?dedupeWindow=soon')).toMatchObject({
      code: 'TRELLIS_E_STORE_URL_INVALID',
      message: /dedupeWindow: expected a duration/,
    });
    expect(await failure('memory:?prefix=a.b')).toMatchObject({ code: 'TRELLIS_E_STORE_URL_INVALID' });
  });

  it('says which server is unreachable and what to check, never a raw driver error', async () => {
    const redis = await failure('redis://127.0.0.1:1');
    expect(redis).toMatchObject({ code: 'TRELLIS_E_STORE_UNAVAILABLE' });
    expect(redis.message).toMatch(/redis:\/\/127\.0\.0\.1:1.*connection refused.*is Redis running/);
    const nats = await failure('nats://127.0.0.1:1');
    expect(nats).toMatchObject({ code: 'TRELLIS_E_STORE_UNAVAILABLE' });
    expect(nats.message).toMatch(/nats:\/\/127\.0\.0\.1:1.*is nats-server running/);
    // A file where the folder should be.
    expect(await failure(`sqlite:${import.meta.filename}/q.db`)).toMatchObject({
      code: 'TRELLIS_E_STORE_UNAVAILABLE',
      message: /open\.test\.ts\/q\.db.*folder exists/,
    });
  });

  it('hides the password of a URL it reports', async () => {
    const r = await failure('redis://app:hunter2@127.0.0.1:1');
    expect(r.code).toBe('TRELLIS_E_STORE_UNAVAILABLE');
    expect(r.message).not.toContain('hunter2');
  });
});
