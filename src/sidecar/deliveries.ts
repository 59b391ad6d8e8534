import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { Pool } from 'undici';
import type { Consumer, MessageQueue } from '../stores/types.js';
import type { AppGate } from './role.js';
import type { SubscriptionConfig } from './schema.js';

/** The push subscriptions of a sidecar, delivering to the app. */
export interface Deliveries {
  /** Stops taking messages and waits for deliveries in flight to settle. */
  stop(): Promise<void>;
}

/**
 * Consumes each subscription's topic and POSTs every message to the app's endpoint. A message is
 * acked only when the app answers 2xx; any other answer, a timeout, a refused connection (the
 * app restarting) or a closed gate nacks it with the subscription's backoff, and after
 * `maxDeliveries` it goes to `<topic>.dlq`. An app that crashes mid-delivery never answered, so
 * the message comes again.
 */
export async function startDeliveries(
  queue: MessageQueue,
  subscriptions: readonly SubscriptionConfig[],
  app: { name: string; port: number },
  gate: AppGate,
  logger: Logger,
  registry: Registry,
): Promise<Deliveries> {
  if (subscriptions.length === 0) return { stop: async () => undefined };
  const outcomes = new Counter({
    name: 'trellis_sidecar_deliveries_total',
    help: 'Messages pushed to the app, by topic and outcome (acked, retried)',
    labelNames: ['topic', 'outcome'] as const,
    registers: [registry],
  });
  const pool = new Pool(`http://127.0.0.1:${app.port}`, { connections: 16 });
  const consumers: Consumer[] = [];
  try {
    for (const sub of subscriptions) {
      const group = sub.group ?? app.name;
      consumers.push(
        await queue.consume(
          sub.topic,
          group,
          async (d) => {
            try {
              // While the app restarts the delivery waits for it rather than spending attempts.
              if (!(await gate.whenOpen(sub.timeout))) throw new Error('the app is not serving');
              const res = await pool.request({
                method: 'POST',
                path: sub.path,
                body: d.payload,
                headers: {
                  'content-type': d.headers['content-type'] ?? 'application/json',
                  'x-trellis-message-id': d.id,
                  'x-trellis-topic': d.topic,
                  'x-trellis-delivery-count': String(d.deliveryCount),
                  ...(d.key === undefined ? {} : { 'x-trellis-key': d.key }),
                },
                headersTimeout: sub.timeout,
                bodyTimeout: sub.timeout,
              });
              await res.body.dump();
              if (res.statusCode < 200 || res.statusCode >= 300)
                throw new Error(`the app answered ${res.statusCode}`);
              outcomes.inc({ topic: sub.topic, outcome: 'acked' });
            } catch (err) {
              outcomes.inc({ topic: sub.topic, outcome: 'retried' });
              logger.warn(
                {
                  topic: sub.topic,
                  id: d.id,
                  deliveryCount: d.deliveryCount,
                  maxDeliveries: sub.maxDeliveries,
                  err: (err as Error).message,
                },
                'delivery to the app failed: it will be retried (or dead-lettered)',
              );
              throw err;
            }
          },
          {
            concurrency: sub.concurrency,
            maxDeliver: sub.maxDeliveries,
            ackWaitMs: 2 * sub.timeout + 5_000,
            backoffMs: sub.backoff,
          },
        ),
      );
    }
  } catch (err) {
    await Promise.allSettled(consumers.map((c) => c.stop()));
    await pool.close();
    throw err;
  }
  return {
    async stop() {
      await Promise.allSettled(consumers.map((c) => c.stop()));
      await pool.close();
    },
  };
}
