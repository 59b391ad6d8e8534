import type { Logger } from 'pino';
import { TrellisError } from '../core/errors.js';
import type { WorkerInstance } from './instance.js';
import type { WorkerStart } from './protocol.js';
import type { WorkloadConfig } from './schema.js';
import { Supervisor } from './supervisor.js';

/**
 * A pool of workers other workloads call (`env.runTask(pool, input)`), one task per worker at a
 * time. Written on worker_threads rather than piscina because the host needs what piscina does
 * not give: a run timeout that ends a runaway task's worker, a queue timeout kept apart from it,
 * and every task on a worker that dies settled at once with a typed error (piscina raises a pool
 * error with no task attached when a worker dies right after respawn).
 */

type PoolConfig = Extract<WorkloadConfig, { kind: 'taskPool' }>;

interface Pending {
  input: unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  queueTimer: NodeJS.Timeout | undefined;
}

interface Running {
  task: Pending;
  runTimer: NodeJS.Timeout;
}

export class TaskPool {
  readonly slots: Supervisor[] = [];
  readonly #queue: Pending[] = [];
  readonly #running = new Map<WorkerInstance, Map<number, Running>>();
  readonly #idle = new Set<WorkerInstance>();
  #nextId = 1;
  completed = 0;
  failed = 0;
  timedOut = 0;

  constructor(
    readonly name: string,
    public config: PoolConfig,
    start: WorkerStart,
    logger: Logger,
  ) {
    for (let i = 0; i < config.size; i++) {
      const slot: Supervisor = new Supervisor(`${name}#${i}`, config, start, logger, {
        switchTo: async (instance) => {
          this.#idle.add(instance);
          queueMicrotask(() => this.#dispatch());
        },
        onMessage: (instance, m) => {
          if (m.t !== 'result') return;
          const running = this.#running.get(instance)?.get(m.id);
          if (!running) return;
          this.#running.get(instance)!.delete(m.id);
          clearTimeout(running.runTimer);
          if (m.ok) {
            this.completed++;
            running.task.resolve(m.value);
          } else {
            this.failed++;
            running.task.reject(
              new TrellisError(
                'TRELLIS_E_HOST_TASK_FAILED',
                `task on pool ${name} failed: ${m.error?.message}`,
                {
                  details: { pool: name, ...(m.error?.code ? { taskCode: m.error.code } : {}) },
                },
              ),
            );
          }
          this.#idle.add(instance);
          this.#dispatch();
        },
        onExit: (instance, exit) => {
          // Settled on the exit event itself: well inside 100 ms of the worker dying.
          this.#idle.delete(instance);
          const held = this.#running.get(instance);
          this.#running.delete(instance);
          for (const r of held?.values() ?? []) {
            clearTimeout(r.runTimer);
            if (exit.reason === 'run-timeout') continue; // already rejected with the timeout
            this.failed++;
            r.task.reject(
              new TrellisError(
                'TRELLIS_E_HOST_WORKER_CRASHED',
                `the worker running this task on pool ${name} ended (${exit.reason}: ${exit.message})`,
                { details: { pool: name, reason: exit.reason } },
              ),
            );
          }
        },
      });
      this.slots.push(slot);
    }
  }

  async run(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.run()));
  }

  get queueDepth(): number {
    return this.#queue.length;
  }

  get inFlight(): number {
    let n = 0;
    for (const m of this.#running.values()) n += m.size;
    return n;
  }

  /** Queues `input` for the next free worker. */
  submit(input: unknown): Promise<unknown> {
    if (this.#queue.length >= this.config.maxQueue && this.#idle.size === 0) {
      return Promise.reject(
        new TrellisError(
          'TRELLIS_E_HOST_TASK_QUEUE_FULL',
          `pool ${this.name} has ${this.#queue.length} tasks waiting (maxQueue): try again later`,
          {
            status: 503,
          },
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const task: Pending = { input, resolve, reject, queueTimer: undefined };
      task.queueTimer = setTimeout(() => {
        const i = this.#queue.indexOf(task);
        if (i < 0) return;
        this.#queue.splice(i, 1);
        this.timedOut++;
        reject(
          new TrellisError(
            'TRELLIS_E_HOST_TASK_QUEUE_TIMEOUT',
            `task waited ${this.config.queueTimeout} ms for a worker of pool ${this.name} (queueTimeout)`,
            {
              status: 503,
            },
          ),
        );
      }, this.config.queueTimeout);
      this.#queue.push(task);
      this.#dispatch();
    });
  }

  #dispatch(): void {
    while (this.#queue.length > 0 && this.#idle.size > 0) {
      const instance = this.#idle.values().next().value as WorkerInstance;
      this.#idle.delete(instance);
      const task = this.#queue.shift()!;
      clearTimeout(task.queueTimer);
      const id = this.#nextId++;
      const runTimer = setTimeout(() => {
        this.timedOut++;
        task.reject(
          new TrellisError(
            'TRELLIS_E_HOST_TASK_TIMEOUT',
            `task on pool ${this.name} ran longer than ${this.config.runTimeout} ms (runTimeout): its worker was ended`,
            {
              status: 504,
            },
          ),
        );
        instance.terminate('run-timeout', `a task ran longer than ${this.config.runTimeout} ms`);
      }, this.config.runTimeout);
      const map = this.#running.get(instance) ?? new Map<number, Running>();
      this.#running.set(instance, map);
      map.set(id, { task, runTimer });
      instance.send({ t: 'task', id, input: task.input });
    }
  }

  async replace(config: PoolConfig, start: WorkerStart): Promise<void> {
    this.config = config;
    for (const s of this.slots) await s.replace(config, start);
  }

  async stop(deadlineMs: number): Promise<void> {
    await Promise.all(this.slots.map((s) => s.stop(deadlineMs)));
    for (const t of this.#queue.splice(0)) {
      clearTimeout(t.queueTimer);
      t.reject(new TrellisError('TRELLIS_E_HOST_STOPPING', `pool ${this.name} is stopping`, { status: 503 }));
    }
  }
}
