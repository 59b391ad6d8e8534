import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { createMetricsRegistry, type Registry } from '../core/metrics.js';
import { openKeyValueStore } from '../stores/kv/index.js';
import { openMessageQueue } from '../stores/queue/index.js';
import type { KeyValueStore, MessageQueue } from '../stores/types.js';
import {
  inputTopicOf,
  type LoadedPipeline,
  type OutputConfig,
  type StageConfig,
  stageIndex,
} from './config.js';
import type { Filter } from './engine.js';
import { map } from './filters.js';
import { fileSource, httpSource, scheduleSource } from './inputs.js';
import { pipelineMetrics, type StageCounts } from './metrics.js';
import { fileSink, httpSink, kvSink, postgresSink } from './outputs.js';
import { pipeSink } from './pipe.js';
import { route, type Sink } from './pipeline.js';
import { buildProcessors, jsonataFn } from './processors.js';
import { runStage, type Stage } from './stage.js';

/** Where `trellis pipeline status` reads a stage instance's counts. */
export const statusPrefix = (pipeline: string) => `pipeline/${pipeline}/status/`;

/** A status record, refreshed every 2 s by each running stage instance. */
export interface StatusRecord extends StageCounts {
  stage: string;
  instance: string;
  updatedAt: number;
  /** Messages per second written, over the last interval. */
  rate: number;
  /** Set by the last record an instance writes as it stops: its counts stay, it is not up. */
  stopped?: boolean;
}

/** A running pipeline file (all its stages, or the one --stage named). */
export interface RunningPipeline {
  readonly registry: Registry;
  readonly stages: Stage[];
  /** Resolves when every stage stopped (a file input ends its stage when the file is read). */
  readonly done: Promise<void>;
  stop(drainMs?: number): Promise<void>;
  /** The chain, for the admin API. */
  describe(): unknown;
}

export interface RunOptions {
  /** Run only this stage (its own process; other processes run the others). */
  stage?: string;
  logger?: Logger;
  registry?: Registry;
  /** Called with an HTTP input's bound address. */
  onListening?: (stage: string, address: { port: number; address: string }) => void;
}

/** Starts the stages of a pipeline file. */
export async function startPipeline(p: LoadedPipeline, o: RunOptions = {}): Promise<RunningPipeline> {
  const which = o.stage === undefined ? p.stages.map((_, i) => i) : [stageIndex(p, o.stage)];
  const registry = o.registry ?? createMetricsRegistry({ defaults: true });
  const metrics = pipelineMetrics(registry);
  const onError = (err: unknown) => o.logger?.warn({ err }, 'pipeline: recovering from an error');
  const queue = await openMessageQueue(p.queue, { onError });
  let state: KeyValueStore | undefined;
  const openState = async () => {
    state ??= await openKeyValueStore(p.state);
    return state;
  };
  const closers: Array<() => Promise<void>> = [];
  const extraQueues = new Map<string, MessageQueue>();
  const queueFor = async (url?: string) => {
    if (!url || url === p.queue) return queue;
    let q = extraQueues.get(url);
    if (!q) {
      q = await openMessageQueue(url, { onError });
      extraQueues.set(url, q);
    }
    return q;
  };
  const instance = `${hostname()}-${process.pid}`;
  const stages: Stage[] = [];
  const observers: Array<{ stage: string; counts: StageCounts; lastOut: number; lastAt: number }> = [];
  try {
    for (const i of which) {
      const s = p.stages[i]!;
      const store = await openState();
      const filters: Filter<unknown, unknown>[] = [];
      if (s.key) {
        const keyOf = jsonataFn(s.key, `stage ${s.name} key`);
        const keyed = map(async (v: unknown, m) => ({ v, k: await keyOf(v, m) }), { name: `${s.name}.key` });
        filters.push(keyed as Filter<unknown, unknown>, {
          name: `${s.name}.key-set`,
          run: (input) =>
            (async function* () {
              for await (const chunk of input) {
                yield chunk.map((e) => {
                  const { v, k } = e.value as { v: unknown; k: unknown };
                  const out = { ...e, value: v };
                  if (k !== undefined && k !== null) out.key = String(k);
                  return out;
                });
              }
            })(),
        });
      }
      filters.push(...(await buildProcessors(s.processors, { dir: p.dir, stage: s.name, state: openState })));
      const observe = metrics.observer(p.name, s.name);
      observers.push({ stage: s.name, counts: observe.counts, lastOut: 0, lastAt: Date.now() });
      const last = i === p.stages.length - 1;
      const output: { topic: string } | Sink<unknown> = last
        ? await outputOf(s, queueFor, openState, closers)
        : { topic: inputTopicOf(p, i + 1)! };
      const input =
        i > 0
          ? { topic: inputTopicOf(p, i)! }
          : 'queue' in s.input!
            ? { topic: s.input.queue.topic }
            : 'file' in s.input!
              ? fileSource(s.input.file.path)
              : 'http' in s.input!
                ? httpSource({
                    ...s.input.http,
                    onListening: (a) => o.onListening?.(s.name, a),
                  })
                : scheduleSource(s.input!.schedule);
      const inputQueue = i === 0 && s.input && 'queue' in s.input ? await queueFor(s.input.queue.url) : queue;
      stages.push(
        await runStage({
          name: s.name,
          queue: inputQueue,
          state: store,
          input,
          filters,
          output: 'topic' in output && inputQueue !== queue ? pipeSink(queue, output.topic) : output,
          concurrency: s.concurrency,
          maxDeliveries: s.maxDeliveries,
          ackWaitMs: s.ackWait,
          observe,
          onError,
        }),
      );
    }
  } catch (err) {
    for (const s of stages) await s.stop(1000).catch(() => {});
    await queue.close();
    throw err;
  }

  // Status records for `trellis pipeline status`, and the depth gauge from them.
  const publishStatus = async (stopped = false) => {
    const store = await openState();
    for (const ob of observers) {
      const now = Date.now();
      const rate = ((ob.counts.out - ob.lastOut) * 1000) / Math.max(1, now - ob.lastAt);
      ob.lastOut = ob.counts.out;
      ob.lastAt = now;
      const record: StatusRecord = {
        ...ob.counts,
        stage: ob.stage,
        instance,
        updatedAt: now,
        rate: stopped ? 0 : rate,
        ...(stopped ? { stopped } : {}),
      };
      await store.put(`${statusPrefix(p.name)}${ob.stage}/${instance}`, JSON.stringify(record));
    }
    const all = await readStatus(store, p.name);
    p.stages.forEach((s, i) => {
      if (i === 0) return;
      const sent = all.filter((r) => r.stage === p.stages[i - 1]!.name).reduce((a, r) => a + r.out, 0);
      const got = all.filter((r) => r.stage === s.name).reduce((a, r) => a + r.in - r.redeliveries, 0);
      metrics.depth.set({ pipeline: p.name, stage: s.name }, Math.max(0, sent - got));
    });
  };
  // One write at a time, so the record a stopping instance writes last is the one that stays.
  let publishing: Promise<void> = Promise.resolve();
  const publish = (stopped = false) =>
    (publishing = publishing.then(() => publishStatus(stopped)).catch(stopped ? () => {} : onError));
  void publish(); // up from the start, not only after the first interval
  const timer = setInterval(() => void publish(), 2000);
  timer.unref();

  const done = Promise.all(stages.map((s) => s.done)).then(() => {});
  let stopping: Promise<void> | undefined;
  return {
    registry,
    stages,
    done,
    describe: () =>
      p.stages.map((s, i) => ({
        stage: s.name,
        input: inputTopicOf(p, i) ?? Object.keys(s.input ?? {})[0],
        output:
          i === p.stages.length - 1 ? Object.keys(s.output ?? { outputs: 1 })[0] : inputTopicOf(p, i + 1),
        dlq: `${inputTopicOf(p, i) ?? s.name}.dlq`,
        runningHere: which.includes(i),
      })),
    stop(drainMs = 10_000) {
      stopping ??= (async () => {
        clearInterval(timer);
        await Promise.all(stages.map((s) => s.stop(drainMs)));
        await publish(true);
        for (const c of closers) await c().catch(() => {});
        for (const q of extraQueues.values()) await q.close();
        await queue.close();
        await state?.close();
      })();
      return stopping;
    },
  };
}

/** Every stage instance's last status record. */
export async function readStatus(store: KeyValueStore, pipeline: string): Promise<StatusRecord[]> {
  const { entries } = await store.list(statusPrefix(pipeline));
  return entries.map((e) => JSON.parse(e.value) as StatusRecord);
}

async function outputOf(
  s: StageConfig,
  queueFor: (url?: string) => Promise<MessageQueue>,
  state: () => Promise<KeyValueStore>,
  closers: Array<() => Promise<void>>,
): Promise<Sink<unknown>> {
  const one = async (c: OutputConfig): Promise<Sink<unknown>> => {
    if ('queue' in c) return pipeSink(await queueFor(c.queue.url), c.queue.topic);
    if ('http' in c) return httpSink(c.http);
    if ('file' in c) return fileSink(c.file.path);
    if ('kv' in c) {
      const store = c.kv.url ? await openKeyValueStore(c.kv.url) : await state();
      if (c.kv.url) closers.push(() => store.close());
      return kvSink(store, c.kv.key, c.kv.prefix);
    }
    const pg = await postgresSink(c.postgres);
    closers.push(() => pg.close());
    return pg;
  };
  if (s.output) return one(s.output);
  const branches = await Promise.all(
    s.outputs!.map(async (c) => {
      const when = c.when ? jsonataFn(c.when, `stage ${s.name} outputs when`) : undefined;
      return { when, sink: await one(c) };
    }),
  );
  // JSONata is asynchronous and route() takes a synchronous test: decide first, then route.
  const routed = route<{ i: number; v: unknown }>(
    branches.map((b, i) => ({ when: (x) => x.i === i, to: unwrap(b.sink) })),
  );
  return {
    name: 'outputs',
    async write(messages) {
      const decided = await Promise.all(
        messages.map(async (m) => {
          for (const [i, b] of branches.entries()) {
            if (!b.when || (await b.when(m.value, m))) return { ...m, value: { i, v: m.value } };
          }
          return { ...m, value: { i: -1, v: m.value } };
        }),
      );
      await routed.write(decided);
    },
  };
}

/** A sink of `{ i, v }` pairs that writes the `v`s to `sink`. */
function unwrap(sink: Sink<unknown>): Sink<{ i: number; v: unknown }> {
  return {
    name: sink.name ?? 'sink',
    write: (messages) => sink.write(messages.map((m) => ({ ...m, value: m.value.v }))),
  };
}
