import type { MessagePort } from 'node:worker_threads';

/**
 * Messages between the host and a workload's worker (a thread's port or a child process's IPC
 * channel carry the same shapes).
 */

/** What the host sends to start a worker (workerData for a thread, the first message for a process). */
export interface WorkerStart {
  name: string;
  kind: 'http' | 'consumer' | 'schedule' | 'taskPool';
  /** Absolute file URL of the workload's module. */
  moduleUrl: string;
  config: Record<string, unknown>;
  /** For a reload of new code: a query that makes the import load the file afresh. */
  generation: number;
  consumer?: { queue: string; topic: string; group: string; concurrency: number; maxDeliver?: number };
  schedule?: { cron: string; timezone?: string; leader?: { store: string; group: string } };
  /** An http thread's end of its request channel (transferred with workerData). */
  channel?: MessagePort;
}

/** Per-worker figures sent with each heartbeat answer. */
export interface WorkerStats {
  /** CPU time of the worker's process, or the busy time of a thread's event loop, ms. */
  cpuMs: number;
  /** Event-loop utilisation since the worker started (0..1). */
  elu: number;
  /** Mean event-loop delay, ms, since the previous heartbeat. */
  loopDelay: number;
  heapUsed: number;
  rss: number;
  handled: number;
  errors: number;
  inFlight: number;
  /** A schedule with `leader:`: whether this worker leads its election now. */
  leading?: boolean;
}

export type ToWorker =
  | { t: 'start'; start: WorkerStart }
  | { t: 'ping'; n: number }
  | { t: 'drain'; idleMs: number }
  | { t: 'task'; id: number; input: unknown }
  | { t: 'callResult'; id: number; ok: boolean; value?: unknown; error?: WireError };

export type FromWorker =
  /** `channel`: an http thread serves requests over the MessagePort it was given, too. */
  | { t: 'ready'; port?: number; channel?: boolean }
  | { t: 'pong'; n: number; stats: WorkerStats }
  | { t: 'result'; id: number; ok: boolean; value?: unknown; error?: WireError }
  | { t: 'call'; id: number; pool: string; input: unknown }
  | { t: 'failed'; error: WireError; fatal?: boolean }
  | { t: 'drained' };

/** An error as it crosses the channel (structured clone drops the class). */
export interface WireError {
  message: string;
  code?: string;
  stack?: string;
}

export function toWire(err: unknown): WireError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      message: err.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(err.stack ? { stack: err.stack } : {}),
    };
  }
  return { message: String(err) };
}
