/**
 * `trellis/host`: Compute Resource Consolidation. Many workloads (http, consumer, schedule,
 * taskPool) in one process, each in its own worker thread or child process, watched, restarted,
 * reloaded one at a time and measured. See docs/compute-resource-consolidation.md.
 */
export { type Host, parseHostConfig, type StartHostOptions, startHost, type WorkloadStatus } from './host.js';
export type { ExitReason, InstanceExit } from './instance.js';
export { type HostConfig, hostSchema, type WorkloadConfig } from './schema.js';
export type { WorkloadEnv } from './worker/entry.js';
