/**
 * Pipes and Filters: `pipeline(source, ...filters, sink)` in one process, and stages connected
 * by a MessageQueue across processes (`runStage`, `trellis pipeline run`).
 */
export type { Chunks, DeadLetter, Filter, FilterContext, FilterOptions, RetryPolicy } from './engine.js';
export { type EnrichOptions, enrich } from './enrich.js';
export {
  type BatchOptions,
  batch,
  type DedupeOptions,
  dedupe,
  filter,
  flatMap,
  map,
  type WindowOptions,
  window,
} from './filters.js';
export type { Envelope, Message } from './message.js';
export {
  type PipelineOptions,
  type PipelineResult,
  pipeline,
  type RouteBranch,
  route,
  runPipeline,
  type Sink,
  type SinkLike,
  SOURCE,
  type Source,
  type SourceLike,
  toSink,
} from './pipeline.js';
