import { z } from 'zod';
import { TrellisError } from '../../core/errors.js';
import { duration, size } from '../../core/units.js';
import type { ConsumeOptions } from '../types.js';

/** Options every backend understands; from the URL query (`?dedupeWindow=5m`) or passed in code. */
export interface MessageQueueOptions {
  /** Publishes with the same `id` inside this window are delivered once. Default 2 minutes. */
  dedupeWindowMs?: number;
  /** Largest payload accepted by publish. Default 1 MiB (NATS's default max_payload). */
  maxPayloadBytes?: number;
  /** SQLite: how often an idle consumer looks for work another process published. Default 50 ms. */
  pollIntervalMs?: number;
  /** How often consumed messages are trimmed and expired dedupe ids forgotten (SQLite, Redis). Default 5 s. */
  sweepIntervalMs?: number;
  /** Redis key prefix / NATS stream and subject prefix, so several apps can share a server. */
  prefix?: string;
  /** Reports errors a consumer survives (a lost connection, a failed ack) instead of throwing them. */
  onError?: (err: unknown) => void;
}

export interface ResolvedQueueOptions {
  dedupeWindowMs: number;
  maxPayloadBytes: number;
  pollIntervalMs: number;
  sweepIntervalMs: number;
  prefix: string;
  onError: (err: unknown) => void;
}

const UrlQuery = z.strictObject({
  dedupeWindow: duration().optional(),
  maxPayload: size().optional(),
  poll: duration().optional(),
  sweep: duration().optional(),
  prefix: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/, 'letters, digits, _ and - only (at most 40)')
    .optional(),
});

/** Splits `scheme:rest?query` and merges the query with options given in code (code wins). */
export function resolveQueueUrl(
  url: string,
  given: MessageQueueOptions = {},
): { base: string; options: ResolvedQueueOptions } {
  const q = url.indexOf('?');
  const base = q < 0 ? url : url.slice(0, q);
  const params = Object.fromEntries(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
  const parsed = UrlQuery.safeParse(params);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((i) =>
        i.code === 'unrecognized_keys'
          ? `unknown option ${i.keys.join(', ')}`
          : `${i.path.join('.')}: ${i.message}`,
      )
      .join('; ');
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${base}: ${problems} (queue URL options: dedupeWindow, maxPayload, poll, sweep, prefix)`,
    );
  }
  const p = parsed.data;
  return {
    base,
    options: {
      dedupeWindowMs: given.dedupeWindowMs ?? p.dedupeWindow ?? 120_000,
      maxPayloadBytes: given.maxPayloadBytes ?? p.maxPayload ?? 1024 * 1024,
      pollIntervalMs: given.pollIntervalMs ?? p.poll ?? 50,
      sweepIntervalMs: Math.max(10, given.sweepIntervalMs ?? p.sweep ?? 5000),
      prefix: given.prefix ?? p.prefix ?? 'trellis',
      onError: given.onError ?? (() => {}),
    },
  };
}

// Topic segments and group names are limited to what every backend can name without escaping
// surprises: NATS subjects split on `.`, NATS durable names forbid it.
const TOPIC_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const GROUP_RE = /^[A-Za-z0-9_-]+$/;

/** Throws TRELLIS_E_QUEUE_NAME_INVALID for a topic that not every backend can carry. */
export function checkTopic(topic: string): void {
  if (typeof topic !== 'string' || topic.length > 200 || !TOPIC_RE.test(topic)) {
    throw new TrellisError(
      'TRELLIS_E_QUEUE_NAME_INVALID',
      `topic ${JSON.stringify(topic)} is not valid: use letters, digits, _ and -, with dots between segments (like orders.created), at most 200 characters`,
    );
  }
}

/** Throws TRELLIS_E_QUEUE_NAME_INVALID for a consumer group name not every backend accepts. */
export function checkGroup(group: string): void {
  if (typeof group !== 'string' || group.length > 100 || !GROUP_RE.test(group)) {
    throw new TrellisError(
      'TRELLIS_E_QUEUE_NAME_INVALID',
      `consumer group ${JSON.stringify(group)} is not valid: use letters, digits, _ and - (no dots), at most 100 characters`,
    );
  }
}

/** Throws TRELLIS_E_QUEUE_PAYLOAD_TOO_LARGE before a payload reaches the server. */
export function checkPayload(topic: string, payload: string, maxBytes: number): void {
  if (typeof payload !== 'string') {
    throw new TrellisError(
      'TRELLIS_E_QUEUE_OPTIONS_INVALID',
      `publish to ${topic}: the payload must be a string (serialize objects with JSON.stringify)`,
    );
  }
  // Cheap upper bound first: a UTF-16 string is never more than 3 bytes per code unit in UTF-8.
  if (payload.length * 3 <= maxBytes) return;
  const bytes = Buffer.byteLength(payload);
  if (bytes > maxBytes) {
    throw new TrellisError(
      'TRELLIS_E_QUEUE_PAYLOAD_TOO_LARGE',
      `publish to ${topic}: payload is ${bytes} bytes, over the ${maxBytes}-byte limit: send a reference (a URL or object-store key) instead, or raise maxPayload`,
      { details: { bytes, maxBytes } },
    );
  }
}

export interface ResolvedConsumeOptions {
  concurrency: number;
  maxDeliver: number;
  ackWaitMs: number;
  backoffMs: number[];
  deadLetterTopic: string;
}

/** Defaults and validation for consume options, the same on every backend. */
export function resolveConsumeOptions(topic: string, o: ConsumeOptions = {}): ResolvedConsumeOptions {
  const r = {
    concurrency: o.concurrency ?? 1,
    maxDeliver: o.maxDeliver ?? 5,
    ackWaitMs: o.ackWaitMs ?? 30_000,
    backoffMs: o.backoffMs ?? [1000, 5000, 30_000],
    deadLetterTopic: o.deadLetterTopic ?? `${topic}.dlq`,
  };
  const bad: string[] = [];
  if (!Number.isInteger(r.concurrency) || r.concurrency < 1 || r.concurrency > 10_000)
    bad.push('concurrency must be an integer from 1 to 10000');
  if (!Number.isInteger(r.maxDeliver) || r.maxDeliver < 1) bad.push('maxDeliver must be an integer >= 1');
  if (!Number.isFinite(r.ackWaitMs) || r.ackWaitMs < 50) bad.push('ackWaitMs must be at least 50');
  if (!Array.isArray(r.backoffMs) || r.backoffMs.length === 0 || r.backoffMs.some((b) => !(b >= 0)))
    bad.push('backoffMs must be a non-empty list of delays >= 0');
  if (bad.length > 0) {
    throw new TrellisError('TRELLIS_E_QUEUE_OPTIONS_INVALID', `consume ${topic}: ${bad.join('; ')}`);
  }
  checkTopic(r.deadLetterTopic);
  if (r.deadLetterTopic === topic) {
    throw new TrellisError(
      'TRELLIS_E_QUEUE_OPTIONS_INVALID',
      `consume ${topic}: deadLetterTopic must differ from the topic itself`,
    );
  }
  return r;
}

/** Headers a dead-lettered message carries on top of its original ones. */
export function deadLetterHeaders(
  headers: Record<string, string>,
  facts: { topic: string; group: string; id: string; deliveries: number; reason: string },
): Record<string, string> {
  return {
    ...headers,
    'trellis-dead-letter-reason': facts.reason.slice(0, 1000),
    'trellis-original-topic': facts.topic,
    'trellis-original-id': facts.id,
    'trellis-group': facts.group,
    'trellis-deliveries': String(facts.deliveries),
  };
}

/** Throws TRELLIS_E_STORE_CLOSED when a queue is used after close(). */
export function checkOpen(closed: boolean, what: string): void {
  if (closed) {
    throw new TrellisError(
      'TRELLIS_E_STORE_CLOSED',
      `${what}: the queue is closed: open a new one with openMessageQueue`,
    );
  }
}
