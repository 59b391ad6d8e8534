/**
 * Latency at a fixed offered rate below saturation. A plain wrk run is a closed loop that always
 * runs the target out of CPU, so an added µs of CPU per request shows up as queueing time for
 * every request; a "+1 ms p50" target means the time added at the load users actually send.
 *
 * wrk paces itself with its Lua `delay()` hook: each connection waits a random 0..2x its share
 * of the interval before each request (mean `connections / rate`), which spreads the sends
 * rather than firing all connections together. The rate is what is offered while the answers
 * take much less than that wait (below saturation, the point of the run); the achieved req/s is
 * in the result. (wrk2 is not packaged here, autocannon's histogram rounds latencies to whole
 * milliseconds, and a Node load generator costs several times wrk's CPU on the shared core.)
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type MeasuredRun, measureRun } from './measure.js';
import { benchDir } from './process.js';
import type { WrkOptions } from './wrk.js';

export interface PacedOptions extends Omit<WrkOptions, 'script'> {
  /** Requests per second offered, over all connections. */
  rate: number;
}

/** The mean wait before each request of one connection, in whole ms (wrk's unit), at least 1. */
export function pacedDelayMs(rate: number, connections: number): number {
  return Math.max(1, Math.round((connections * 1000) / rate));
}

/** A wrk run paced to about `rate` req/s, with the target's CPU per request. */
export function measurePaced(pid: number | undefined, options: PacedOptions): Promise<MeasuredRun> {
  const connections = options.connections ?? 64;
  const mean = pacedDelayMs(options.rate, connections);
  const script = join(benchDir(), `paced-${mean}.lua`);
  writeFileSync(script, `function delay()\n  return math.random(0, ${2 * mean})\nend\n`);
  const { rate: _, ...wrk } = options;
  return measureRun(pid, { ...wrk, connections, script });
}
