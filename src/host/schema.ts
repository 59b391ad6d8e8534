import { z } from 'zod';
import { duration, size } from '../core/units.js';
import { adminSchema } from '../gateway/schema.js';
import { listenSchema } from '../http/listener.js';

/**
 * The `trellis host` file: workloads of four kinds sharing one process, each in its own worker
 * thread (or child process), with limits the host enforces. See
 * docs/compute-resource-consolidation.md.
 */

/** What the host enforces on one workload's worker, and what it does when a limit is hit. */
export const limitsSchema = z
  .strictObject({
    /** JS heap of a thread (resourceLimits.maxOldGenerationSizeMb); the V8 flag for a process. */
    heap: size().default(256 * 1024 * 1024),
    /** Longest the worker's event loop may stay blocked before it is terminated and restarted. */
    eventLoop: duration().default(5_000),
    /** Resident set size of a process-isolated worker before it is killed and restarted. */
    rss: size().optional(),
  })
  .prefault({});

/** Restart with exponential backoff; more than `maxRestarts` within `window` stops restarting. */
export const restartSchema = z
  .strictObject({
    backoff: z.strictObject({ base: duration().default(100), max: duration().default(10_000) }).prefault({}),
    maxRestarts: z.number().int().min(0).default(5),
    window: duration().default(60_000),
  })
  .prefault({});

const common = {
  /** The module (relative to the host file) the worker loads. */
  module: z.string().min(1),
  isolation: z.enum(['thread', 'process']).default('thread'),
  /** Workloads that must be ready before this one starts (and stop after it). */
  dependsOn: z.array(z.string()).default([]),
  limits: limitsSchema,
  restart: restartSchema,
  /** Passed to the module as `env.config` (fetch handlers, consumers, jobs, tasks). */
  config: z.record(z.string(), z.unknown()).default({}),
};

const httpWorkload = z.strictObject({
  kind: z.literal('http'),
  ...common,
  /** Serve under this path prefix on the host's listener (stripped before the module sees it). */
  mount: z.string().startsWith('/', 'a mount is a path like /orders').optional(),
  /** Or on its own listener. */
  listen: listenSchema.optional(),
  /** How long a replaced or stopping instance may take to finish its requests. */
  drainTimeout: duration().default(10_000),
});

const consumerWorkload = z.strictObject({
  kind: z.literal('consumer'),
  ...common,
  /** A MessageQueue URL: memory:, sqlite:, redis://, nats://. */
  queue: z.string().min(1),
  topic: z.string().min(1),
  group: z.string().min(1),
  concurrency: z.number().int().min(1).default(1),
  maxDeliver: z.number().int().min(1).optional(),
});

const scheduleWorkload = z.strictObject({
  kind: z.literal('schedule'),
  ...common,
  /** A cron pattern (croner: 5 or 6 fields, seconds first when 6). */
  cron: z.string().min(1),
  timezone: z.string().optional(),
  /** Run only on the leader of this election (a LeaseStore URL: etcd://, redis://, postgres://, …): one host of many runs the job. */
  leader: z.strictObject({ store: z.string().min(1), group: z.string().min(1) }).optional(),
});

const taskPoolWorkload = z.strictObject({
  kind: z.literal('taskPool'),
  ...common,
  /** Worker threads (or processes) in the pool. */
  size: z.number().int().min(1).default(2),
  /** Tasks waiting for a worker beyond this are refused. */
  maxQueue: z.number().int().min(0).default(1000),
  /** Longest a task may wait for a worker. */
  queueTimeout: duration().default(5_000),
  /** Longest a task may run; its worker is terminated (and restarted) when it overruns. */
  runTimeout: duration().default(30_000),
});

export const workloadSchema = z
  .discriminatedUnion('kind', [httpWorkload, consumerWorkload, scheduleWorkload, taskPoolWorkload])
  .superRefine((w, ctx) => {
    if (w.kind === 'http' && (w.mount === undefined) === (w.listen === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'an http workload needs a mount path or its own listen, not both',
      });
    }
    if (w.limits.rss !== undefined && w.isolation !== 'process') {
      ctx.addIssue({
        code: 'custom',
        path: ['limits', 'rss'],
        message: 'limits.rss applies to isolation: process (a thread shares the host RSS): use limits.heap',
      });
    }
  });

export const hostSchema = z
  .strictObject({
    /** The shared listener http workloads with a `mount` are served on. */
    listen: listenSchema.prefault({ port: 8080 }),
    admin: adminSchema.prefault({ port: 9902 }),
    /** How long SIGTERM waits for each workload to finish in-flight work. */
    drainTimeout: duration().default(10_000),
    workloads: z.record(
      z.string().regex(/^[a-z][a-z0-9-]*$/, 'name workloads like orders or order-mail'),
      workloadSchema,
    ),
  })
  .superRefine((cfg, ctx) => {
    const names = Object.keys(cfg.workloads);
    for (const [name, w] of Object.entries(cfg.workloads)) {
      for (const dep of w.dependsOn) {
        if (!names.includes(dep)) {
          ctx.addIssue({
            code: 'custom',
            path: ['workloads', name, 'dependsOn'],
            message: `${name} depends on ${JSON.stringify(dep)}, which is not a workload (known: ${names.join(', ')})`,
          });
        }
      }
    }
  });

export type HostConfig = z.output<typeof hostSchema>;
export type WorkloadConfig = z.output<typeof workloadSchema>;
export type Limits = z.output<typeof limitsSchema>;
