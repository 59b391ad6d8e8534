import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { silentLogger } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { MemoryEventStore } from '../stores/events/memory.js';
import { authorize, commandBus, logging, metrics, queryBus, validate } from './bus.js';
import { aggregateStream, handleCommand } from './decider.js';
import { idempotency } from './idempotency.js';
import { counterDecider } from './testing/fixtures.js';

type Commands = {
  increment: [{ id: string; by: number }, { position: number }];
  explode: [Record<string, never>, never];
};

function setup() {
  const store = new MemoryEventStore();
  const registry = createMetricsRegistry();
  let runs = 0;
  const bus = commandBus<Commands>()
    .use(logging(silentLogger()))
    .use(metrics(registry, 'command'))
    .use(authorize((env) => env.principal !== 'mallory'))
    .use(validate({ increment: z.strictObject({ id: z.string().min(1), by: z.number().int().positive() }) }))
    .use(idempotency())
    .register('increment', async ({ id, by }) => {
      runs++;
      return handleCommand(store, id, { type: 'Increment', by }, counterDecider);
    })
    .register('explode', async () => {
      throw new Error('boom');
    });
  return { store, registry, bus, runs: () => runs };
}

describe('command bus', () => {
  it('one failing handler fails only its own call', async () => {
    const { bus } = setup();
    const results = await Promise.allSettled([
      bus.send('explode', {}),
      bus.send('increment', { id: 'a', by: 1 }),
      bus.send('explode', {}),
      bus.send('increment', { id: 'b', by: 2 }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'fulfilled', 'rejected', 'fulfilled']);
    // And the bus keeps working afterwards.
    await expect(bus.send('increment', { id: 'a', by: 1 })).resolves.toMatchObject({ nextVersion: 2 });
  });

  it('applies a command retried with the same idempotency key once, even concurrently', async () => {
    const { bus, store, runs } = setup();
    const first = await Promise.all(
      Array.from({ length: 5 }, () => bus.send('increment', { id: 'x', by: 1 }, { idempotencyKey: 'k1' })),
    );
    const again = await bus.send('increment', { id: 'x', by: 1 }, { idempotencyKey: 'k1' });
    expect(runs()).toBe(1);
    expect(new Set([...first, again].map((r) => r.position)).size).toBe(1);
    await bus.send('increment', { id: 'x', by: 1 }, { idempotencyKey: 'k2' });
    expect((await aggregateStream(store, 'x', counterDecider)).state.value).toBe(2);
  });

  it('does not remember failures, so a failed command can be retried', async () => {
    const store = new MemoryEventStore();
    let fail = true;
    const bus = commandBus<Commands>()
      .use(idempotency())
      .register('increment', async ({ id, by }) => {
        if (fail) throw new Error('transient');
        return handleCommand(store, id, { type: 'Increment', by }, counterDecider);
      });
    await expect(bus.send('increment', { id: 'x', by: 1 }, { idempotencyKey: 'k' })).rejects.toThrow(
      'transient',
    );
    fail = false;
    await expect(bus.send('increment', { id: 'x', by: 1 }, { idempotencyKey: 'k' })).resolves.toMatchObject({
      nextVersion: 1,
    });
  });

  it('validates payloads, authorizes callers, and names unknown commands', async () => {
    const { bus } = setup();
    await expect(bus.send('increment', { id: '', by: 1.5 })).rejects.toMatchObject({
      code: 'TRELLIS_E_BUS_INVALID_PAYLOAD',
      status: 422,
      message: expect.stringMatching(/id: .*by: /),
    });
    await expect(bus.send('increment', { id: 'a', by: 1 }, { principal: 'mallory' })).rejects.toMatchObject({
      code: 'TRELLIS_E_BUS_FORBIDDEN',
    });
    await expect(bus.send('nope' as 'explode', {})).rejects.toMatchObject({
      code: 'TRELLIS_E_BUS_NO_HANDLER',
    });
    expect(() => bus.register('explode', async () => undefined as never)).toThrow(/already has a handler/);
  });

  it('counts calls by outcome in the metrics registry', async () => {
    const { bus, registry } = setup();
    await bus.send('increment', { id: 'a', by: 1 });
    await bus.send('explode', {}).catch(() => {});
    const text = await registry.metrics();
    expect(text).toContain('trellis_cqrs_commands_total{name="increment",outcome="ok"} 1');
    expect(text).toContain('trellis_cqrs_commands_total{name="explode",outcome="error"} 1');
  });
});

describe('query bus', () => {
  it('answers by name', async () => {
    const q = queryBus<{ hello: [{ who: string }, string] }>().register('hello', ({ who }) => `hi ${who}`);
    expect(await q.send('hello', { who: 'ann' })).toBe('hi ann');
  });
});
