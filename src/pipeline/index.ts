/**
 * Pipes and Filters: `pipeline(source, ...filters, sink)` in one process, and stages connected
 * by a MessageQueue across processes (`runStage`, `trellis pipeline run`).
 */

export {
  type InputConfig,
  type LoadedPipeline,
  loadPipelineFile,
  type OutputConfig,
  type PipelineFile,
  parsePipeline,
  pipelineSchema,
  type StageConfig,
} from './config.js';
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
export { fileSource, httpSource, scheduleSource } from './inputs.js';
export type { Envelope, Message } from './message.js';
export { fileSink, httpSink, kvSink, postgresSink } from './outputs.js';
export { type ChainPosition, HEADERS, pipeProducer, pipeSink } from './pipe.js';
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
export { type RunningPipeline, readStatus, type StatusRecord, startPipeline } from './run.js';
export { runStage, type Stage, type StageObserver, type StageOptions } from './stage.js';
