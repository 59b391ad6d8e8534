/**
 * Strangler Fig (`trellis/strangler`): the `strangler:` route handler's building blocks and the
 * in-process face, `experiment()`. See docs/strangler-fig.md.
 */
export { type Answer, compareAnswers, compileIgnore, type Difference, type IgnoreRules } from './diff.js';
export { type ExperimentOptions, type ExperimentResult, experiment } from './experiment.js';
export { type GuardThresholds, judge, OutcomeWindow, stepBackFrom } from './guard.js';
export { MismatchLog, type MismatchReport } from './mismatches.js';
export { NoiseModel } from './noise.js';
export { type StranglerOptions, stranglerSchema } from './options.js';
export {
  defaultStateStore,
  type HistoryEntry,
  MigrationState,
  MODES,
  type Mode,
  type RouteState,
} from './state.js';
export { bucketOf, toModern } from './sticky.js';
