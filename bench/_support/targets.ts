/**
 * What a wrk benchmark measures: a named URL and the process whose CPU is charged for it, and
 * the checks before measuring that each one is up and answers what it should (a fast wrong
 * answer must not win).
 */
import { type BenchProcess, waitForHttp } from './process.js';

export interface Target {
  name: string;
  url: string;
  /** The process serving it (its CPU per request is measured, its log tail shown on errors). */
  proc?: BenchProcess;
  /** Request headers wrk sends. */
  headers?: Record<string, string>;
}

/**
 * Waits until every target answers 200, failing with the target's name and its process's log
 * tail; with `expected`, then checks each one's body (`checkBodies`).
 */
export async function waitForTargets(
  targets: readonly Target[],
  timeoutMs: number,
  expected?: (t: Target) => string | readonly string[],
): Promise<void> {
  for (const t of targets) {
    await waitForHttp(t.url, timeoutMs).catch((err: unknown) => {
      throw new Error(`${t.name} did not come up: ${(err as Error).message}\n${t.proc?.tail() ?? ''}`);
    });
  }
  if (expected !== undefined) await checkBodies(targets, expected);
}

/** Every target must answer 200 with one of the bodies `expected(t)` allows. */
export async function checkBodies(
  targets: readonly Target[],
  expected: (t: Target) => string | readonly string[],
): Promise<void> {
  for (const t of targets) {
    const res = await fetch(t.url, { headers: t.headers });
    const body = await res.text();
    const allowed = expected(t);
    if (res.status !== 200 || !(typeof allowed === 'string' ? [allowed] : allowed).includes(body))
      throw new Error(
        `${t.name} answered ${res.status} ${JSON.stringify(body.slice(0, 200))}, not the expected body`,
      );
  }
}
