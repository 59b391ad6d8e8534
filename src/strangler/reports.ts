import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { KeyValueStore } from '../stores/types.js';
import type { StranglerRouteView } from './views.js';

/**
 * The evidence of each gateway instance, published to the migration state's store: every
 * second (when something changed) each instance writes its route's counts, top mismatching
 * fields and last mismatches under `<prefix>reports/<route>/<instance>`, so `trellis strangler
 * status` and `report` see every instance from the store alone, and the evidence outlives a
 * restart. Bounded: at most TOP fields and RECENT mismatches (bodies already cut and redacted
 * by the MismatchLog), well under a store value's 1 MB.
 */

/** This process, in report keys. */
export const instanceId = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;

const TOP = 20;
const RECENT = 10;
const MAX_BYTES = 512 * 1024;

/** What one instance published about one route. */
export interface RouteSnapshot {
  instance: string;
  at: string;
  route: string;
  legacy: string;
  modern: string;
  mode: string;
  weight: number;
  split: ReturnType<StranglerRouteView['split']>;
  errors: ReturnType<StranglerRouteView['errors']>;
  shadow: ReturnType<StranglerRouteView['shadow']>;
  guard: ReturnType<StranglerRouteView['guard']>;
  report: ReturnType<StranglerRouteView['report']>;
}

export function snapshotOf(view: StranglerRouteView): RouteSnapshot {
  const live = view.live();
  const report = view.report(TOP);
  const snap: RouteSnapshot = {
    instance: instanceId,
    at: new Date().toISOString(),
    route: view.route,
    legacy: view.legacy,
    modern: view.modern,
    mode: live.mode,
    weight: live.weight,
    split: view.split(),
    errors: view.errors(),
    shadow: view.shadow(),
    guard: view.guard(),
    report: { ...report, recent: report.recent.slice(-RECENT) },
  };
  if (JSON.stringify(snap).length > MAX_BYTES) {
    snap.report.recent = snap.report.recent.map(({ answers: _, ...m }) => m);
  }
  return snap;
}

/** Publishes a route's snapshot every second while it changes. */
export class ReportPublisher {
  readonly #timer: NodeJS.Timeout;
  #last = '';

  constructor(
    private readonly store: KeyValueStore,
    private readonly prefix: string,
    private readonly view: StranglerRouteView,
    private readonly log: Logger,
  ) {
    this.#timer = setInterval(() => void this.publish(), 1000);
    this.#timer.unref();
  }

  /** Writes the snapshot now when anything counted changed since the last write. */
  async publish(): Promise<void> {
    const snap = snapshotOf(this.view);
    const signature = JSON.stringify([
      snap.mode,
      snap.weight,
      snap.split,
      snap.errors,
      snap.shadow,
      snap.report.compared,
      snap.report.failed,
    ]);
    if (signature === this.#last) return;
    this.#last = signature;
    try {
      await this.store.put(`${this.prefix}reports/${this.view.route}/${instanceId}`, JSON.stringify(snap));
    } catch (err) {
      this.#last = '';
      this.log.debug(
        { route: this.view.route, err: (err as Error).message },
        'strangler: report not published',
      );
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.publish();
  }
}

/** Every instance's snapshot of a route (or of every route), newest first. */
export async function readSnapshots(
  store: KeyValueStore,
  prefix: string,
  route?: string,
): Promise<RouteSnapshot[]> {
  const { entries } = await store.list(`${prefix}reports/${route === undefined ? '' : `${route}/`}`);
  const out: RouteSnapshot[] = [];
  for (const e of entries) {
    try {
      out.push(JSON.parse(e.value) as RouteSnapshot);
    } catch {
      // A value that is not a snapshot is skipped: reports are evidence, never control.
    }
  }
  return out.sort((a, b) => b.at.localeCompare(a.at));
}
