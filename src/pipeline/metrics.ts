import { Counter, Gauge, Histogram, LATENCY_BUCKETS, type Registry } from '../core/metrics.js';
import type { StageObserver } from './stage.js';

/** Counters of one stage instance, also written to the state store for `trellis pipeline status`. */
export interface StageCounts {
  in: number;
  out: number;
  errors: number;
  deadLettered: number;
  redeliveries: number;
  inFlight: number;
  lagSeconds: number;
}

/** Prometheus metrics of every stage in this process, labelled by pipeline and stage. */
export function pipelineMetrics(registry: Registry) {
  const labelNames = ['pipeline', 'stage'] as const;
  const m = {
    in: new Counter({
      name: 'trellis_pipeline_messages_in_total',
      help: 'Messages a stage received (redeliveries included)',
      labelNames,
      registers: [registry],
    }),
    out: new Counter({
      name: 'trellis_pipeline_messages_out_total',
      help: 'Messages a stage wrote to its output',
      labelNames,
      registers: [registry],
    }),
    errors: new Counter({
      name: 'trellis_pipeline_errors_total',
      help: 'Failed attempts of a filter on a message',
      labelNames: ['pipeline', 'stage', 'filter'],
      registers: [registry],
    }),
    dead: new Counter({
      name: 'trellis_pipeline_dead_letters_total',
      help: 'Messages sent to the dead-letter topic',
      labelNames,
      registers: [registry],
    }),
    redeliveries: new Counter({
      name: 'trellis_pipeline_redeliveries_total',
      help: 'Deliveries after the first',
      labelNames,
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'trellis_pipeline_processing_seconds',
      help: 'Time a filter took for one message',
      labelNames: ['pipeline', 'stage', 'filter'],
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'trellis_pipeline_in_flight',
      help: 'Messages inside a stage now',
      labelNames,
      registers: [registry],
    }),
    lag: new Gauge({
      name: 'trellis_pipeline_lag_seconds',
      help: 'Age of the last message a stage received, since it entered its pipe',
      labelNames,
      registers: [registry],
    }),
    depth: new Gauge({
      name: 'trellis_pipeline_queue_depth',
      help: 'Messages waiting on a stage input pipe (sent by the stage before minus received, from the status records)',
      labelNames,
      registers: [registry],
    }),
  };
  return {
    depth: m.depth,
    /** An observer for one stage that feeds the metrics and keeps counts. */
    observer(pipeline: string, stage: string): StageObserver & { counts: StageCounts } {
      const l = { pipeline, stage };
      const counts: StageCounts = {
        in: 0,
        out: 0,
        errors: 0,
        deadLettered: 0,
        redeliveries: 0,
        inFlight: 0,
        lagSeconds: 0,
      };
      // Label children resolved once: prom-client hashes a label object on every call otherwise,
      // and received, inFlight and lag are called per message.
      const inC = m.in.labels(l);
      const outC = m.out.labels(l);
      const inFlightG = m.inFlight.labels(l);
      const lagG = m.lag.labels(l);
      const latency = new Map<string, ReturnType<typeof m.latency.labels>>();
      return {
        counts,
        received(n) {
          counts.in += n;
          inC.inc(n);
        },
        wrote(n) {
          counts.out += n;
          outC.inc(n);
        },
        deadLettered() {
          counts.deadLettered++;
          m.dead.inc(l);
        },
        redelivered() {
          counts.redeliveries++;
          m.redeliveries.inc(l);
        },
        lag(s) {
          counts.lagSeconds = s;
          lagG.set(s);
        },
        inFlight(n) {
          counts.inFlight = n;
          inFlightG.set(n);
        },
        processed(filter, seconds, count = 1) {
          let h = latency.get(filter);
          if (!h) {
            h = m.latency.labels({ ...l, filter });
            latency.set(filter, h);
          }
          for (let i = 0; i < count; i++) h.observe(seconds);
        },
        failed(filter) {
          counts.errors++;
          m.errors.inc({ ...l, filter });
        },
      };
    },
  };
}
