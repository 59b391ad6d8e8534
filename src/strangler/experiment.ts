import { type Answer, compareAnswers, type Difference, type IgnoreRules } from './diff.js';

/**
 * The library face of the Strangler Fig, for a migration inside one process (GitHub's Scientist
 * style): `experiment()` runs the control (the old code) and, for a sampled share of calls, the
 * candidate (the new code) beside it, compares the two and reports the difference. The caller
 * always gets the control's result or error, never the candidate's: a candidate that throws,
 * hangs or differs cannot change what the caller sees, nor make it wait.
 */

export interface ExperimentResult<T> {
  name: string;
  control: { value?: T; error?: unknown; ms: number };
  candidate: { value?: T; error?: unknown; ms: number; timedOut?: boolean };
  /** The comparison of the two values, when both succeeded. */
  difference?: Difference;
  /** Both succeeded and compared equal (or both failed). */
  matched: boolean;
}

export interface ExperimentOptions<T> {
  name: string;
  control: () => T | Promise<T>;
  candidate: () => T | Promise<T>;
  /** Custom comparison; default: structural JSON comparison under `ignore`. */
  compare?: (control: T, candidate: T) => boolean | Difference;
  ignore?: IgnoreRules;
  /** Share of calls (0..1) that also run the candidate; default 1. */
  sample?: number;
  /** The candidate's own deadline in ms; default 1000. Past it the candidate is abandoned. */
  timeoutMs?: number;
  /** Receives every result, after the control has been returned (errors in it are swallowed). */
  report?: (result: ExperimentResult<T>) => void;
  /** Random source for sampling (tests). */
  random?: () => number;
}

const asAnswer = (v: unknown): Answer => ({ status: 200, headers: {}, body: v });

/** Runs the control and, sampled, the candidate; resolves to the control's result. */
export async function experiment<T>(o: ExperimentOptions<T>): Promise<T> {
  const sampled = (o.random ?? Math.random)() < (o.sample ?? 1);
  const started = performance.now();
  const candidateRun = sampled ? runCandidate(o) : undefined;
  let value: T | undefined;
  let error: unknown;
  let failed = false;
  try {
    value = await o.control();
  } catch (err) {
    failed = true;
    error = err;
  }
  const controlMs = performance.now() - started;
  if (candidateRun !== undefined) {
    // Reported later, off the caller's path.
    void candidateRun.then((candidate) => {
      const result: ExperimentResult<T> = {
        name: o.name,
        control: failed ? { error, ms: controlMs } : { value: value as T, ms: controlMs },
        candidate,
        matched: false,
      };
      if (!failed && candidate.error === undefined && candidate.timedOut !== true) {
        const verdict = o.compare
          ? o.compare(value as T, candidate.value as T)
          : compareAnswers(asAnswer(value), asAnswer(candidate.value), o.ignore ? { rules: o.ignore } : {});
        if (typeof verdict === 'boolean') result.matched = verdict;
        else {
          result.difference = verdict;
          result.matched = verdict.equal;
        }
      } else result.matched = failed && candidate.error !== undefined;
      try {
        o.report?.(result);
      } catch {
        // A broken reporter must not surface anywhere near the caller.
      }
    });
  }
  if (failed) throw error;
  return value as T;
}

async function runCandidate<T>(o: ExperimentOptions<T>): Promise<ExperimentResult<T>['candidate']> {
  const started = performance.now();
  const timeoutMs = o.timeoutMs ?? 1000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
    timer.unref();
  });
  try {
    // Started on the next tick, so a candidate that blocks synchronously still lets the control start first.
    await Promise.resolve();
    const outcome = await Promise.race([Promise.resolve().then(o.candidate), timeout]);
    if (outcome === 'timeout') return { ms: performance.now() - started, timedOut: true };
    return { value: outcome as T, ms: performance.now() - started };
  } catch (err) {
    return { error: err, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}
