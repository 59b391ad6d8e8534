import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { KeyValueStore } from '../../stores/types.js';
import { commandBus } from '../bus.js';
import {
  type IdempotencyStore,
  idempotency,
  kvIdempotencyStore,
  memoryIdempotencyStore,
} from '../idempotency.js';

type Commands = { pay: [{ order: string; amount: number }, { receipt: string }] };

/**
 * The idempotency middleware's promise, against one kind of store: `instances()` returns the
 * stores two service instances would use (the same store for memory; two handles on the same
 * data for a KeyValueStore), so the cases show what is shared across instances.
 */
export function idempotencyCases(
  name: string,
  instances: () => Promise<[IdempotencyStore, IdempotencyStore]>,
): void {
  describe(`idempotency: ${name}`, () => {
    function service(store: IdempotencyStore, runs: { n: number }) {
      return commandBus<Commands>()
        .use(idempotency({ store }))
        .register('pay', async ({ order, amount }) => {
          runs.n += 1;
          await new Promise((r) => setImmediate(r));
          return { receipt: `${order}:${amount}:${randomBytes(4).toString('hex')}` };
        });
    }

    it('a key retried on two instances at once runs the command once; both get its result or a 409 to retry', async () => {
      const [a, b] = await instances();
      const runs = { n: 0 };
      const one = service(a, runs);
      const two = service(b, runs);
      const key = randomBytes(6).toString('hex');
      const settled = await Promise.allSettled(
        [one, two, one, two].map((bus) =>
          bus.send('pay', { order: 'o1', amount: 5 }, { principal: 'ann', idempotencyKey: key }),
        ),
      );
      expect(runs.n).toBe(1);
      const receipts = new Set(settled.filter((s) => s.status === 'fulfilled').map((s) => s.value.receipt));
      expect(receipts.size).toBe(1);
      for (const s of settled) {
        if (s.status === 'rejected')
          expect(s.reason).toMatchObject({ code: 'TRELLIS_E_IDEMPOTENCY_IN_PROGRESS', status: 409 });
      }
      // Once finished, every instance answers the first result.
      const later = await two.send(
        'pay',
        { order: 'o1', amount: 5 },
        { principal: 'ann', idempotencyKey: key },
      );
      expect(receipts.has(later.receipt)).toBe(true);
      expect(runs.n).toBe(1);
    });

    it('scopes keys by principal and tenant, and refuses a key reused with another payload (422)', async () => {
      const [a, b] = await instances();
      const runs = { n: 0 };
      const one = service(a, runs);
      const two = service(b, runs);
      const key = randomBytes(6).toString('hex');
      const ann = await one.send(
        'pay',
        { order: 'o2', amount: 1 },
        { principal: { sub: 'ann', tenant: 't1' }, idempotencyKey: key },
      );
      const bob = await two.send(
        'pay',
        { order: 'o2', amount: 1 },
        { principal: { sub: 'bob', tenant: 't1' }, idempotencyKey: key },
      );
      const annT2 = await two.send(
        'pay',
        { order: 'o2', amount: 1 },
        { principal: { sub: 'ann', tenant: 't2' }, idempotencyKey: key },
      );
      expect(new Set([ann.receipt, bob.receipt, annT2.receipt]).size).toBe(3);
      expect(runs.n).toBe(3);
      await expect(
        two.send(
          'pay',
          { order: 'o2', amount: 99 },
          { principal: { sub: 'ann', tenant: 't1' }, idempotencyKey: key },
        ),
      ).rejects.toMatchObject({ code: 'TRELLIS_E_IDEMPOTENCY_KEY_REUSED', status: 422 });
      expect(runs.n).toBe(3);
    });

    it('does not keep failures: a failed run frees the key for a retry', async () => {
      const [a, b] = await instances();
      let fail = true;
      const bus = (store: IdempotencyStore) =>
        commandBus<Commands>()
          .use(idempotency({ store }))
          .register('pay', async ({ order }) => {
            if (fail) throw new Error('transient');
            return { receipt: order };
          });
      const key = randomBytes(6).toString('hex');
      await expect(bus(a).send('pay', { order: 'o3', amount: 1 }, { idempotencyKey: key })).rejects.toThrow(
        'transient',
      );
      fail = false;
      await expect(bus(b).send('pay', { order: 'o3', amount: 1 }, { idempotencyKey: key })).resolves.toEqual({
        receipt: 'o3',
      });
    });
  });
}

/** The cases on memory (one process). */
export function memoryIdempotencyCases(): void {
  idempotencyCases('memory', async () => {
    const store = memoryIdempotencyStore();
    return [store, store];
  });
}

/** The cases on a KeyValueStore: `open` gives a new handle on the same data each call. */
export function kvIdempotencyCases(
  name: string,
  open: () => Promise<KeyValueStore>,
  opened: KeyValueStore[],
): void {
  idempotencyCases(`KeyValueStore ${name}`, async () => {
    const prefix = `idem-${randomBytes(4).toString('hex')}/`;
    const a = await open();
    const b = await open();
    opened.push(a, b);
    return [kvIdempotencyStore(a, { prefix }), kvIdempotencyStore(b, { prefix })];
  });
}
