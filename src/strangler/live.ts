import type { Logger } from 'pino';
import { type GuardThresholds, judge, OutcomeWindow, stepBackFrom } from './guard.js';
import type { StranglerMetrics } from './metrics.js';
import type { MigrationState, Mode, RouteState } from './state.js';

/**
 * What one gateway instance believes a strangled route's mode is right now: the file's default
 * until the migration state says otherwise, then whatever the store pushes (MigrationState's
 * `follow`, within the store's watch latency: SQLite polls every 100 ms). If the store cannot
 * be read the last known state is kept and following resumes with backoff: a store outage never
 * changes where traffic goes.
 */
export interface LiveMode {
  mode: Mode;
  weight: number;
  reverseShadow: boolean;
  /** `file` until the store has a state for the route. */
  source: 'file' | 'store';
  by?: string;
  at?: string;
  reason?: string;
}

export class LiveState {
  current: LiveMode;
  readonly #ac = new AbortController();
  readonly #listeners: Array<(m: LiveMode) => void> = [];
  /** Resolves once the store was read (or could not be, after a first attempt). */
  readonly ready: Promise<void>;

  constructor(
    readonly route: string,
    readonly state: MigrationState,
    fileDefault: Omit<LiveMode, 'source'>,
    private readonly log: Logger,
  ) {
    this.current = { ...fileDefault, source: 'file' };
    let markReady!: () => void;
    this.ready = new Promise((r) => {
      markReady = r;
    });
    void this.#follow(markReady);
  }

  /** Called on every change of this route's mode. */
  onChange(listener: (m: LiveMode) => void): void {
    this.#listeners.push(listener);
  }

  async #follow(markReady: () => void): Promise<void> {
    let backoff = 250;
    const signal = this.#ac.signal;
    try {
      const first = await this.state.get(this.route);
      if (first !== undefined) this.#apply(first);
    } catch (err) {
      this.log.warn(
        { route: this.route, err: (err as Error).message },
        'strangler: cannot read the migration state; serving the mode written in the file',
      );
    }
    markReady();
    while (!signal.aborted) {
      try {
        await this.state.follow((route, s) => {
          if (route === this.route) this.#apply(s);
        }, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn(
          { route: this.route, err: (err as Error).message },
          'strangler: cannot follow the migration state; keeping the last known mode',
        );
      }
      if (signal.aborted) break;
      await new Promise((r) => setTimeout(r, backoff).unref());
      backoff = Math.min(backoff * 2, 5000);
    }
    markReady();
  }

  #apply(s: RouteState): void {
    const next: LiveMode = {
      mode: s.mode,
      weight: s.weight,
      reverseShadow: s.reverseShadow,
      source: 'store',
      by: s.by,
      at: s.at,
      ...(s.reason === undefined ? {} : { reason: s.reason }),
    };
    const before = this.current;
    this.current = next;
    if (before.at === next.at && before.by === next.by) return; // follow() re-reads what get() gave
    if (before.mode !== next.mode || before.weight !== next.weight) {
      this.log.info(
        { route: this.route, mode: next.mode, weight: next.weight, by: next.by, reason: next.reason },
        'strangler: migration state changed',
      );
    }
    for (const l of this.#listeners) l(next);
  }

  /** Stops following. */
  close(): void {
    this.#ac.abort();
  }
}

/**
 * Guard rails for one route: the modern side's outcomes over a window, judged every second; a
 * step back (canary -> shadow, modern -> canary) is written through MigrationState (author
 * `guard`, the reason), so every instance follows it, and logged. `onlyIf` keeps two instances
 * judging at once from stepping back twice.
 */
export class GuardRails {
  window: OutcomeWindow;
  /** The last verdict, for status. */
  verdict: ReturnType<typeof judge> = { action: 'hold', why: 'no samples yet' };
  readonly #timer: NodeJS.Timeout;
  #writing = false;

  constructor(
    readonly route: string,
    private readonly live: LiveState,
    private readonly thresholds: GuardThresholds & {
      windowMs: number;
      stepBack: boolean;
      canaryWeight: number;
    },
    private readonly metrics: StranglerMetrics,
    private readonly log: Logger,
  ) {
    this.window = new OutcomeWindow(thresholds.windowMs);
    // A new mode starts a new window: what the modern side did at 10 % says little about 50 %.
    live.onChange(() => {
      this.window = new OutcomeWindow(thresholds.windowMs);
    });
    this.#timer = setInterval(() => void this.check(), 1000);
    this.#timer.unref();
  }

  /** One answer of the modern side (primary or copy). */
  record(error: boolean, ms: number): void {
    this.window.record(error, ms);
  }

  /** Judges now and steps back when the thresholds are passed. */
  async check(): Promise<void> {
    const mode = this.live.current.mode;
    this.verdict = judge(this.window.stats(), this.thresholds);
    const to = stepBackFrom(mode);
    if (this.verdict.action !== 'stepBack' || to === undefined || !this.thresholds.stepBack || this.#writing)
      return;
    const why = this.verdict.why;
    this.#writing = true;
    try {
      const written = await this.live.state.set(this.route, {
        mode: to,
        ...(to === 'canary' ? { weight: this.thresholds.canaryWeight } : {}),
        by: 'guard',
        reason: why,
        onlyIf: mode,
      });
      if (written !== undefined) {
        this.metrics.stepBack(mode, to);
        this.log.warn({ route: this.route, from: mode, to, reason: why }, 'strangler: guard stepped back');
      }
      this.window = new OutcomeWindow(this.thresholds.windowMs);
    } catch (err) {
      this.log.error(
        { route: this.route, err: (err as Error).message },
        'strangler: guard could not step back',
      );
    } finally {
      this.#writing = false;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
