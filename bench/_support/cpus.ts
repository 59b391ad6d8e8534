/**
 * The CPU layout of the wrk benchmarks on this two-core machine: the target measured on one
 * core, wrk and the origins it forwards to on the other, so the load does not steal the
 * target's CPU (two-worker targets take both, `0,1`).
 */

/** The CPU a measured target is pinned to. */
export const TARGET_CPU = 0;
/** The CPU wrk and the origins are pinned to. */
export const LOAD_CPU = 1;
