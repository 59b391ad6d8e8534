export {
  LeaderElector,
  type LeaderElectorOptions,
  type LeadershipContext,
  type StoppedLeadingInfo,
  type TermEndReason,
} from './elector.js';
export { PostgresFence, type PostgresFenceOptions } from './fencing/postgres.js';
export {
  DEFAULT_LEASE_DURATION,
  DEFAULT_RENEW_DEADLINE,
  DEFAULT_RETRY_PERIOD,
  type ElectionTiming,
  electionTiming,
} from './options.js';
export { leaderPanel } from './panel.js';
export {
  describeExit,
  EXIT_CRASH_LOOP,
  FENCING_TOKEN_ENV,
  LEADER_GROUP_ENV,
  LEADER_IDENTITY_ENV,
  type RestartPolicy,
  type SupervisedCommand,
  type SuperviseOptions,
  superviseWhileLeading,
} from './supervise.js';
