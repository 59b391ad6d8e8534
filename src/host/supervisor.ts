import type { Logger } from 'pino';
import { TrellisError } from '../core/errors.js';
import { type InstanceExit, WorkerInstance } from './instance.js';
import type { FromWorker, WorkerStart, WorkerStats } from './protocol.js';
import type { Limits, WorkloadConfig } from './schema.js';

/**
 * Keeps one worker of a workload running: restarts it with exponential backoff when it ends on
 * its own, stops restarting after `restart.maxRestarts` within `restart.window` (a crash loop),
 * and replaces it on reload by starting the new one first, switching, then draining the old.
 */

export type WorkloadState = 'starting' | 'ready' | 'backoff' | 'failed' | 'stopping' | 'stopped';

/** The backoff before restart number `n` (0-based) within the window. */
export function backoffDelay(n: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** n);
}

export interface SupervisorHooks {
  /** A new instance is ready (http: its port); resolve once traffic points at it. */
  switchTo?(instance: WorkerInstance): Promise<void>;
  /** Every message from the current instance (task results, calls into pools). */
  onMessage?(instance: WorkerInstance, m: FromWorker): void;
  /** The current instance ended (task pools settle what it held). */
  onExit?(instance: WorkerInstance, exit: InstanceExit): void;
}

export class Supervisor {
  state: WorkloadState = 'starting';
  current: WorkerInstance | undefined;
  restarts = 0;
  lastExit: (InstanceExit & { at: string }) | undefined;
  /** Handled and error counts of instances that have ended (a new instance counts from zero). */
  readonly carried = { handled: 0, errors: 0, cpuMs: 0 };
  #recent: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #readyWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #generation = 0;

  constructor(
    readonly name: string,
    public config: WorkloadConfig,
    public start: WorkerStart,
    readonly logger: Logger,
    readonly hooks: SupervisorHooks = {},
  ) {}

  /** Starts the first instance; resolves when it is ready, rejects if it cannot start (crash loop). */
  run(): Promise<void> {
    this.#spawn();
    return this.whenReady();
  }

  whenReady(): Promise<void> {
    if (this.state === 'ready') return Promise.resolve();
    if (this.state === 'failed') return Promise.reject(this.#failure());
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Figures of the current instance plus those carried over from ended ones. */
  totals(): { stats: WorkerStats | undefined; handled: number; errors: number; cpuMs: number } {
    const s = this.current?.stats;
    return {
      stats: s,
      handled: this.carried.handled + (s?.handled ?? 0),
      errors: this.carried.errors + (s?.errors ?? 0),
      cpuMs: this.carried.cpuMs + (s?.cpuMs ?? 0),
    };
  }

  #limits(): Limits {
    return this.config.limits;
  }

  #spawn(): WorkerInstance {
    const start = { ...this.start, generation: this.start.generation + ++this.#generation };
    const instance: WorkerInstance = new WorkerInstance(start, this.config.isolation, this.#limits(), {
      onReady: () => {
        if (this.current !== instance) return;
        void this.#becomeReady(instance);
      },
      onMessage: (m) => this.hooks.onMessage?.(instance, m),
      onExit: (exit) => this.#onExit(instance, exit),
    });
    this.current = instance;
    if (this.state !== 'stopping') this.state = 'starting';
    return instance;
  }

  async #becomeReady(instance: WorkerInstance): Promise<void> {
    try {
      await this.hooks.switchTo?.(instance);
    } catch (err) {
      this.logger.error({ workload: this.name, err }, 'could not switch traffic to the new instance');
      instance.terminate('stopped', 'switch failed');
      return;
    }
    if (this.current !== instance || this.state === 'stopping') return;
    this.state = 'ready';
    this.logger.info({ workload: this.name, port: instance.port }, 'workload ready');
    for (const w of this.#readyWaiters.splice(0)) w.resolve();
  }

  #onExit(instance: WorkerInstance, exit: InstanceExit): void {
    const s = instance.stats;
    if (s) {
      this.carried.handled += s.handled;
      this.carried.errors += s.errors;
      this.carried.cpuMs += s.cpuMs;
    }
    this.hooks.onExit?.(instance, exit);
    if (this.current !== instance) return; // a drained old instance after a reload
    if (this.state === 'stopping' || this.state === 'stopped') {
      this.state = 'stopped';
      return;
    }
    this.lastExit = { ...exit, at: new Date().toISOString() };
    const now = Date.now();
    const { backoff, maxRestarts, window } = this.config.restart;
    this.#recent = this.#recent.filter((t) => now - t < window);
    if (this.#recent.length >= maxRestarts) {
      this.state = 'failed';
      this.current = undefined;
      const err = this.#failure();
      this.logger.error({ workload: this.name, reason: exit.reason, code: err.code }, err.message);
      for (const w of this.#readyWaiters.splice(0)) w.reject(err);
      return;
    }
    const delay = backoffDelay(this.#recent.length, backoff.base, backoff.max);
    this.#recent.push(now);
    this.restarts++;
    this.state = 'backoff';
    this.logger.warn(
      {
        workload: this.name,
        reason: exit.reason,
        detail: exit.message,
        restartInMs: delay,
        restarts: this.restarts,
      },
      'workload ended: restarting',
    );
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.state === 'backoff') this.#spawn();
    }, delay);
  }

  #failure(): TrellisError {
    const { maxRestarts, window } = this.config.restart;
    return new TrellisError(
      'TRELLIS_E_HOST_CRASH_LOOP',
      `workload ${this.name} ended ${maxRestarts + 1} times within ${window} ms (last: ${this.lastExit?.reason ?? 'unknown'}: ${this.lastExit?.message ?? ''}): not restarting it; fix it and reload`,
      { details: { workload: this.name, reason: this.lastExit?.reason } },
    );
  }

  /**
   * Replaces the worker with one running `start` (new code or config): the new one starts and
   * becomes ready (traffic switches to it) before the old one drains. The old keeps serving if
   * the new one cannot start.
   */
  async replace(config: WorkloadConfig, start: WorkerStart): Promise<void> {
    const old = this.current;
    const previous = { config: this.config, start: this.start };
    this.config = config;
    this.start = start;
    this.#recent = [];
    if (this.#timer) clearTimeout(this.#timer);
    const wasFailed = this.state === 'failed' || this.state === 'backoff';
    const next = this.#spawnReplacement();
    const outcome = await Promise.race([
      next.ready.then(() => 'ready' as const),
      next.instance.exited.then(() => 'exited' as const),
    ]);
    if (outcome === 'exited') {
      this.config = previous.config;
      this.start = previous.start;
      if (old && !wasFailed) this.current = old;
      throw new TrellisError(
        'TRELLIS_E_HOST_RELOAD_FAILED',
        `workload ${this.name}: the new version did not start (${next.instance.exitMessage()}); the old one keeps running`,
      );
    }
    if (old && old !== next.instance) await drainInstance(old, this.#drainTimeout());
  }

  #spawnReplacement(): { instance: WorkerInstance; ready: Promise<void> } {
    const start = { ...this.start, generation: this.start.generation + ++this.#generation };
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => {
      resolveReady = r;
    });
    const instance: WorkerInstance = new WorkerInstance(start, this.config.isolation, this.#limits(), {
      onReady: () => {
        void (async () => {
          await this.hooks.switchTo?.(instance);
          this.current = instance;
          this.state = 'ready';
          resolveReady();
        })().catch(() => instance.terminate('stopped', 'switch failed'));
      },
      onMessage: (m) => this.hooks.onMessage?.(instance, m),
      onExit: (exit) => {
        if (this.current === instance) this.#onExit(instance, exit);
        else this.hooks.onExit?.(instance, exit);
      },
    });
    return { instance, ready };
  }

  #drainTimeout(): number {
    return this.config.kind === 'http' ? this.config.drainTimeout : 10_000;
  }

  /** Drains the current instance (finishing in-flight work within `deadlineMs`) and stops restarting. */
  async stop(deadlineMs: number): Promise<void> {
    this.state = 'stopping';
    if (this.#timer) clearTimeout(this.#timer);
    for (const w of this.#readyWaiters.splice(0)) w.reject(new Error(`workload ${this.name} stopped`));
    const c = this.current;
    if (c) await drainInstance(c, Math.min(deadlineMs, this.#drainTimeout()));
    this.state = 'stopped';
  }
}

/** Asks an instance to finish its work and waits for it to end; terminates it at the deadline. */
export async function drainInstance(instance: WorkerInstance, deadlineMs: number): Promise<void> {
  instance.markStopping();
  // A short idle window: requests routed to it just before the switch still arrive and finish.
  instance.send({ t: 'drain', idleMs: 200 });
  const timer = setTimeout(() => instance.terminate('stopped', 'drain deadline'), deadlineMs);
  const drained = new Promise<void>((resolve) => instance.onDrained(resolve));
  await Promise.race([drained, instance.exited]);
  instance.terminate('stopped', 'drained');
  await instance.exited;
  clearTimeout(timer);
}
