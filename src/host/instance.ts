import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { Pool } from 'undici';
import { ChannelDispatcher } from './channel.js';
import type { FromWorker, ToWorker, WireError, WorkerStart, WorkerStats } from './protocol.js';
import type { Limits } from './schema.js';

/**
 * One running copy of a workload: a worker thread, or a child process with `isolation: process`,
 * and its watchdogs. It ends for one `ExitReason`; the supervisor decides what happens next.
 */

/** Why a worker ended. */
export type ExitReason =
  /** It called process.exit, or its code failed to load. */
  | 'exit'
  /** An exception nothing caught. */
  | 'uncaught'
  /** Its JS heap hit `limits.heap`. */
  | 'heap'
  /** Its event loop did not answer a heartbeat within `limits.eventLoop`. */
  | 'event-loop'
  /** A process-isolated worker's RSS passed `limits.rss`. */
  | 'rss'
  /** A task overran the pool's `runTimeout`. */
  | 'run-timeout'
  /** The host asked it to stop (reload, shutdown). */
  | 'stopped';

export interface InstanceExit {
  reason: ExitReason;
  message: string;
  code: number | null;
}

export interface InstanceEvents {
  onReady(port: number | undefined): void;
  onMessage(m: FromWorker): void;
  onExit(exit: InstanceExit): void;
}

const ENTRY = new URL('./worker/entry.js', import.meta.url);
const MB = 1024 * 1024;

export class WorkerInstance {
  readonly startedAt = Date.now();
  stats: WorkerStats | undefined;
  port: number | undefined;
  /** An http thread's request channel, once its worker serves it (fetch-style modules). */
  channel: ChannelDispatcher | undefined;
  #channelPort: MessagePort | undefined;
  ready = false;
  #thread: Worker | undefined;
  #child: ChildProcess | undefined;
  #reason: { reason: ExitReason; message: string } | undefined;
  #lastPong = Date.now();
  #ping = 0;
  #watchdog: NodeJS.Timeout;
  #exited = false;
  readonly exited: Promise<InstanceExit>;
  #resolveExit!: (e: InstanceExit) => void;

  constructor(
    readonly start: WorkerStart,
    readonly isolation: 'thread' | 'process',
    readonly limits: Limits,
    readonly events: InstanceEvents,
  ) {
    this.exited = new Promise((r) => {
      this.#resolveExit = r;
    });
    const heapMb = Math.max(16, Math.round(limits.heap / MB));
    if (isolation === 'thread') {
      // An http workload's requests come over a MessagePort, not a loopback connection (see
      // channel.ts); the worker says in its ready message whether it serves it.
      const mc = start.kind === 'http' ? new MessageChannel() : undefined;
      this.#channelPort = mc?.port1;
      const w = new Worker(ENTRY, {
        workerData: mc ? { ...start, channel: mc.port2 } : start,
        ...(mc ? { transferList: [mc.port2] } : {}),
        resourceLimits: {
          maxOldGenerationSizeMb: heapMb,
          maxYoungGenerationSizeMb: Math.min(64, Math.max(4, heapMb / 8)),
        },
      });
      this.#thread = w;
      w.on('message', (m: FromWorker) => this.#onMessage(m));
      w.on('error', (err: Error & { code?: string }) => {
        this.#reason ??=
          err.code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? { reason: 'heap', message: `heap limit of ${heapMb} MB reached` }
            : { reason: 'uncaught', message: err.message };
      });
      w.on('exit', (code) => this.#onExit(code));
    } else {
      const c = fork(fileURLToPath(ENTRY), [], {
        execArgv: [`--max-old-space-size=${heapMb}`],
        serialization: 'advanced',
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      this.#child = c;
      c.on('message', (m: FromWorker) => this.#onMessage(m));
      c.on('exit', (code, signal) => {
        // V8 aborts a process whose heap is exhausted (SIGABRT, or exit 134 through a shell).
        if (signal === 'SIGABRT' || code === 134)
          this.#reason ??= { reason: 'heap', message: `heap limit of ${heapMb} MB reached` };
        this.#onExit(code);
      });
      c.on('error', () => {});
      c.send({ t: 'start', start } satisfies ToWorker);
    }
    // The heartbeat: a loop blocked longer than limits.eventLoop cannot answer, and is ended.
    const every = Math.max(25, Math.min(1000, Math.floor(limits.eventLoop / 4)));
    this.#watchdog = setInterval(() => {
      if (Date.now() - this.#lastPong > limits.eventLoop) {
        this.terminate('event-loop', `event loop blocked for more than ${limits.eventLoop} ms`);
        return;
      }
      this.send({ t: 'ping', n: ++this.#ping });
    }, every);
    this.#watchdog.unref();
  }

  #drainedWaiters: (() => void)[] = [];
  #lastExit: InstanceExit | undefined;

  /** Marks the coming exit as asked for (a drain), whatever the worker's exit code. */
  markStopping(): void {
    this.#reason ??= { reason: 'stopped', message: 'drained' };
  }

  onDrained(fn: () => void): void {
    this.#drainedWaiters.push(fn);
  }

  /** Why it ended, for messages. */
  exitMessage(): string {
    return this.#lastExit ? `${this.#lastExit.reason}: ${this.#lastExit.message}` : 'still running';
  }

  send(m: ToWorker): void {
    if (this.#exited) return;
    try {
      if (this.#thread) this.#thread.postMessage(m);
      else if (this.#child?.connected) this.#child.send(m);
    } catch {
      // the worker is going away; its exit settles everything
    }
  }

  /** Ends the worker now, for `reason`. */
  terminate(reason: ExitReason, message: string): void {
    if (this.#exited) return;
    this.#reason ??= { reason, message };
    if (this.#thread) void this.#thread.terminate();
    else this.#child?.kill('SIGKILL');
  }

  #onMessage(m: FromWorker): void {
    this.#lastPong = Date.now();
    if (m.t === 'pong') {
      this.stats = m.stats;
      if (this.limits.rss !== undefined && m.stats.rss > this.limits.rss) {
        this.terminate(
          'rss',
          `RSS ${Math.round(m.stats.rss / MB)} MB passed the limit of ${Math.round(this.limits.rss / MB)} MB`,
        );
      }
    } else if (m.t === 'ready') {
      this.ready = true;
      this.port = m.port;
      if (m.channel && this.#channelPort && m.port !== undefined) {
        const loopback = `http://127.0.0.1:${m.port}`;
        this.channel = new ChannelDispatcher(this.#channelPort, () => new Pool(loopback));
      } else this.#channelPort?.close();
      this.events.onReady(m.port);
    } else if (m.t === 'drained') {
      for (const fn of this.#drainedWaiters.splice(0)) fn();
    } else if (m.t === 'failed' && m.fatal) {
      this.#reason ??= { reason: 'uncaught', message: m.error.message };
    } else if (m.t === 'failed' && !this.ready) {
      this.#reason ??= { reason: 'exit', message: `failed to start: ${m.error.message}` };
    }
    this.events.onMessage(m);
  }

  #onExit(code: number | null): void {
    if (this.#exited) return;
    this.#exited = true;
    clearInterval(this.#watchdog);
    if (this.channel) this.channel.ended();
    else this.#channelPort?.close();
    const r = this.#reason ?? { reason: 'exit' as const, message: `exited with code ${code}` };
    const exit = { ...r, code };
    this.#lastExit = exit;
    this.events.onExit(exit);
    this.#resolveExit(exit);
  }
}

export function wireMessage(e: WireError | undefined): string {
  return e?.message ?? 'unknown error';
}
