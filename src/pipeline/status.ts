import type { AdminPanel } from '../admin/panels.js';
import type { KeyValueStore } from '../stores/types.js';
import type { LoadedPipeline } from './config.js';
import { readStatus } from './run.js';

/** One stage as `trellis pipeline status` and the dashboard show it, over every instance. */
export interface StageStatus {
  stage: string;
  /** Instances that reported within the last 10 s and have not stopped since. */
  instances: number;
  in: number;
  out: number;
  errors: number;
  deadLetters: number;
  redeliveries: number;
  /** Messages per second, summed over the live instances. */
  rate: number;
  lagSeconds: number;
  /** Sent by the previous stage minus received here (an estimate); absent for the first stage. */
  depth?: number;
}

/** Every stage's figures, from the status records the instances write to the state store. */
export async function pipelineStatus(store: KeyValueStore, p: LoadedPipeline): Promise<StageStatus[]> {
  const records = await readStatus(store, p.name);
  const now = Date.now();
  return p.stages.map((s, i) => {
    const mine = records.filter((r) => r.stage === s.name);
    // Up: refreshed in the last 10 s (every 2 s while running) and not stopped since.
    const live = mine.filter((r) => !r.stopped && now - r.updatedAt < 10_000);
    const sum = (f: (r: (typeof mine)[number]) => number, from = mine) => from.reduce((a, r) => a + f(r), 0);
    const prev = i > 0 ? records.filter((r) => r.stage === p.stages[i - 1]!.name) : [];
    const depth =
      i > 0 ? Math.max(0, sum((r) => r.out, prev) - sum((r) => r.in - r.redeliveries)) : undefined;
    return {
      stage: s.name,
      instances: live.length,
      in: sum((r) => r.in),
      out: sum((r) => r.out),
      errors: sum((r) => r.errors),
      deadLetters: sum((r) => r.deadLettered),
      redeliveries: sum((r) => r.redeliveries),
      rate: Math.round(sum((r) => r.rate, live) * 10) / 10,
      lagSeconds: live.length ? Math.max(...live.map((r) => r.lagSeconds)) : 0,
      ...(depth === undefined ? {} : { depth }),
    };
  });
}

/**
 * The pipeline's dashboard panel: each stage's throughput, depth, lag, errors and dead letters
 * (all instances, from the status records), and which stages run in this process.
 */
export function pipelinePanel(store: KeyValueStore, p: LoadedPipeline, here: readonly string[]): AdminPanel {
  return {
    kind: 'pipeline',
    id: `pipeline:${p.name}`,
    title: `Pipeline ${p.name}`,
    view: async () => ({
      pipeline: p.name,
      stages: (await pipelineStatus(store, p)).map((s) => ({ ...s, here: here.includes(s.stage) })),
    }),
  };
}
