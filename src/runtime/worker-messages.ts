import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ReloadResult } from '../gateway/gateway.js';

/**
 * The messages a gateway cluster's primary and its workers exchange over the cluster IPC
 * channel. Every request carries an `id`; the worker answers with the same `id`. Reloads are
 * two-phase: `prepare` everywhere, then `commit` everywhere, or `abort` everywhere.
 */

/** What a worker needs to start its gateway. */
export interface StartMessage {
  t: 'start';
  /** The committed configuration text and where it came from. */
  text: string;
  label: string;
  /** The folder relative paths in the configuration start from (the gateway file's). */
  baseDir: string;
  /** The cluster's active version: a replacement worker starts where the others are. */
  version: number;
}

export type WorkerRequest =
  | { t: 'prepare'; id: number; text: string; label: string }
  | { t: 'commit'; id: number }
  | { t: 'abort'; id: number }
  | { t: 'metrics'; id: number }
  | { t: 'view'; id: number; what: 'routes' | 'services' | 'config' }
  | { t: 'panels'; id: number };

/** Sent by the primary to end a worker: drain within `deadlineMs`, flush logs, exit 0. */
export interface StopMessage {
  t: 'stop';
  deadlineMs: number;
}

export type ToWorker = StartMessage | WorkerRequest | StopMessage;

export type FromWorker =
  /** Loaded and listening for messages: the primary may send `start`. */
  | { t: 'hello' }
  | { t: 'started'; ports: Record<string, number>; version: number }
  | { t: 'failed'; error: string; code?: string }
  | { t: 'reply'; id: number; ok: true; value: unknown }
  | { t: 'reply'; id: number; ok: false; error: string };

/** The answer to `prepare`. */
export interface PrepareReply {
  ok: boolean;
  version?: number;
  result?: ReloadResult;
}

/** The answer to `metrics`: prom-client's JSON form, what AggregatorRegistry.aggregate merges. */
export type MetricsReply = MetricObjectWithValues<MetricValue<string>>[];
