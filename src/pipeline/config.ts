import { basename, dirname, extname } from 'node:path';
import { z } from 'zod';
import { loadConfigFile, parseConfig } from '../core/config.js';
import { TrellisError } from '../core/errors.js';
import { didYouMean } from '../core/suggest.js';
import { duration } from '../core/units.js';

/** Stage names become consumer groups and topic segments: no dots. */
const name = z.string().regex(/^[A-Za-z0-9_-]{1,60}$/, 'letters, digits, _ and - only (at most 60)');
const topic = z
  .string()
  .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'letters, digits, _ and -, with dots between segments');
const expr = z.string().min(1);

/** A custom processor: a JSONata expression or a JS module's export. */
const code = z.union([
  z.strictObject({
    jsonata: expr,
    name: name.optional(),
    concurrency: z.int().min(1).max(10_000).optional(),
  }),
  z.strictObject({
    module: z.string().min(1),
    export: z.string().default('default'),
    name: name.optional(),
    concurrency: z.int().min(1).max(10_000).optional(),
  }),
]);

const processor = z.union([
  z.strictObject({ map: code }),
  z.strictObject({ filter: code }),
  z.strictObject({ flatMap: code }),
  z.strictObject({
    batch: z.strictObject({ size: z.int().min(1), maxWait: duration().optional(), name: name.optional() }),
  }),
  z.strictObject({
    window: z.strictObject({
      duration: duration(),
      perKey: z.boolean().default(true),
      name: name.optional(),
    }),
  }),
  z.strictObject({
    dedupe: z.strictObject({ key: expr.optional(), prefix: z.string().optional(), name: name.optional() }),
  }),
  z.strictObject({
    enrich: z.strictObject({
      url: z.string().min(1),
      method: z.enum(['GET', 'POST', 'PUT']).default('GET'),
      timeout: duration().default(2000),
      retries: z.int().min(0).max(10).default(2),
      /** Field of the value the response goes into (default: merged into the value). */
      as: z.string().optional(),
      headers: z.record(z.string(), z.string()).optional(),
      name: name.optional(),
      concurrency: z.int().min(1).max(10_000).optional(),
    }),
  }),
]);

const input = z.union([
  z.strictObject({ queue: z.strictObject({ topic, url: z.string().optional() }) }),
  z.strictObject({ file: z.strictObject({ path: z.string().min(1) }) }),
  z.strictObject({
    http: z.strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.int().min(0).max(65_535),
      path: z.string().startsWith('/').default('/'),
      maxBody: z
        .int()
        .min(1)
        .default(1024 * 1024),
    }),
  }),
  z.strictObject({
    schedule: z.strictObject({
      cron: z.string().min(1),
      message: z.unknown().optional(),
      timezone: z.string().optional(),
    }),
  }),
]);

const outputKinds = {
  queue: z.strictObject({ topic, url: z.string().optional() }),
  http: z.strictObject({
    url: z.string().url(),
    method: z.enum(['POST', 'PUT']).default('POST'),
    timeout: duration().default(5000),
    retries: z.int().min(0).max(10).default(3),
    headers: z.record(z.string(), z.string()).optional(),
  }),
  file: z.strictObject({ path: z.string().min(1) }),
  kv: z.strictObject({ url: z.string().optional(), key: expr, prefix: z.string().default('') }),
  postgres: z.strictObject({
    url: z.string().min(1),
    table: z
      .string()
      .regex(
        /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/,
        'a table name like orders or shop.orders',
      ),
    /** Column -> JSONata expression (default: every top-level field of the value). */
    columns: z.record(z.string(), expr).optional(),
    /** A unique column that receives the idempotency key; duplicates are skipped (ON CONFLICT DO NOTHING). */
    idColumn: z.string().optional(),
  }),
};

const output = z.union([
  z.strictObject({ queue: outputKinds.queue }),
  z.strictObject({ http: outputKinds.http }),
  z.strictObject({ file: outputKinds.file }),
  z.strictObject({ kv: outputKinds.kv }),
  z.strictObject({ postgres: outputKinds.postgres }),
]);

const routed = z.union([
  z.strictObject({ when: expr.optional(), queue: outputKinds.queue }),
  z.strictObject({ when: expr.optional(), http: outputKinds.http }),
  z.strictObject({ when: expr.optional(), file: outputKinds.file }),
  z.strictObject({ when: expr.optional(), kv: outputKinds.kv }),
  z.strictObject({ when: expr.optional(), postgres: outputKinds.postgres }),
]);

const stage = z.strictObject({
  name,
  input: input.optional(),
  /** JSONata for the ordering key (default: the key the message came with). */
  key: expr.optional(),
  processors: z.array(processor).default([]),
  output: output.optional(),
  /** Several outputs: each message goes to the first whose `when` matches (no `when`: always). */
  outputs: z.array(routed).min(1).optional(),
  concurrency: z.int().min(1).max(10_000).default(64),
  maxDeliveries: z.int().min(1).max(1000).default(5),
  ackWait: duration().default(30_000),
});

/** The schema of a pipeline file. */
export function pipelineSchema() {
  return z
    .strictObject({
      /** The pipeline's name: the prefix of its pipe topics (default: the file name). */
      name: name.optional(),
      /** The MessageQueue between stages (default sqlite:./data/trellis-pipeline.db). */
      queue: z.string().default('sqlite:./data/trellis-pipeline.db'),
      /** KeyValueStore for cursors, dedupe and status (default: the queue's URL when it is sqlite/memory/redis). */
      state: z.string().optional(),
      /** The admin listener of `trellis pipeline run` (`--admin HOST:PORT` overrides it: one per stage instance). */
      admin: z
        .strictObject({
          host: z.string().default('127.0.0.1'),
          port: z.int().min(0).max(65535),
        })
        .optional(),
      stages: z.array(stage).min(1),
    })
    .superRefine((p, ctx) => {
      const names = p.stages.map((s) => s.name);
      p.stages.forEach((s, i) => {
        if (names.indexOf(s.name) !== i) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', i, 'name'],
            message: `stage "${s.name}" is named twice`,
          });
        }
        if (i === 0 && !s.input) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', 0],
            message: 'the first stage needs an input (queue, file, http or schedule)',
          });
        }
        if (i > 0 && s.input) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', i, 'input'],
            message: `only the first stage has an input: "${s.name}" reads what "${p.stages[i - 1]!.name}" sends`,
          });
        }
        const last = i === p.stages.length - 1;
        if (last && !s.output && !s.outputs) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', i],
            message: 'the last stage needs an output (or outputs)',
          });
        }
        if (!last && (s.output || s.outputs)) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', i, s.output ? 'output' : 'outputs'],
            message: `only the last stage has an output: "${s.name}" sends to "${p.stages[i + 1]!.name}"`,
          });
        }
        if (s.output && s.outputs) {
          ctx.addIssue({
            code: 'custom',
            path: ['stages', i, 'outputs'],
            message: 'use output or outputs, not both',
          });
        }
      });
    });
}

export type PipelineFile = z.output<ReturnType<typeof pipelineSchema>>;
export type StageConfig = PipelineFile['stages'][number];
export type ProcessorConfig = StageConfig['processors'][number];
export type InputConfig = NonNullable<StageConfig['input']>;
export type OutputConfig = z.output<typeof output> | z.output<typeof routed>;

/** A loaded pipeline file with its defaults filled in. */
export interface LoadedPipeline extends PipelineFile {
  name: string;
  state: string;
  /** The folder module paths are relative to. */
  dir: string;
}

/** Where stage i reads from: the first stage's queue input, or the previous stage's pipe. */
export function inputTopicOf(p: Pick<LoadedPipeline, 'name' | 'stages'>, i: number): string | undefined {
  const s = p.stages[i]!;
  if (i === 0) return s.input && 'queue' in s.input ? s.input.queue.topic : undefined;
  return `${p.name}.${s.name}`;
}

/** The stage named `stage`, or TRELLIS_E_PIPELINE_STAGE_UNKNOWN with a suggestion. */
export function stageIndex(p: Pick<LoadedPipeline, 'stages'>, stage: string): number {
  const i = p.stages.findIndex((s) => s.name === stage);
  if (i < 0) {
    const names = p.stages.map((s) => s.name);
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_STAGE_UNKNOWN',
      `unknown stage "${stage}"${didYouMean(stage, names)}: the file has ${names.join(', ')}`,
    );
  }
  return i;
}

function defaultState(queue: string): string {
  if (queue.startsWith('sqlite:') || queue.startsWith('memory:') || queue.startsWith('redis:')) {
    return queue.split('?')[0]!;
  }
  return 'sqlite:./data/trellis-pipeline-state.db';
}

function complete(p: PipelineFile, file: string, dir: string): LoadedPipeline {
  return {
    ...p,
    name: p.name ?? (basename(file, extname(file)).replace(/[^A-Za-z0-9_-]/g, '-') || 'pipeline'),
    state: p.state ?? defaultState(p.queue),
    dir,
  };
}

/** Reads and validates a pipeline file (errors as file:line:col path: message). */
export function loadPipelineFile(file: string): LoadedPipeline {
  return complete(loadConfigFile(file, pipelineSchema()), file, dirname(file));
}

/** Validates pipeline YAML text. */
export function parsePipeline(text: string, file = 'pipeline.yaml', dir = '.'): LoadedPipeline {
  return complete(parseConfig(text, pipelineSchema(), file), file, dir);
}
