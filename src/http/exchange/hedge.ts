import type { Dispatcher } from 'undici';
import type { AttemptOutcome, Upstream } from '../upstream/types.js';
import { KeptAnswer } from './kept-answer.js';
import { failureOf } from './outcome.js';

/**
 * Hedging for the streaming exchange: when an attempt has no response head after a delay, a
 * second attempt (a hedge) goes to another upstream; the first head wins, the other is aborted.
 * Only the ambassador sets it (its `hedge:` policy); the proxy handler never pays for it.
 */
export interface HedgeOptions {
  /** The wait before a hedge, ms, at this moment (fixed, or the remote's observed p95). */
  delayMs(): number;
  /** Hedges per call at most. */
  maxHedges: number;
  /** Methods that may be hedged, upper case. */
  methods: ReadonlySet<string>;
  /** Calls with a (buffered) body may be hedged too; a streamed body never is. */
  withBody: boolean;
  /** A hedge was sent, won the race, or was due but refused by the retry budget. */
  counted(event: 'sent' | 'won' | 'budget'): void;
}

/** What a hedge leg reports to its exchange (implemented by the streaming exchange). */
export interface HedgeHost {
  /** The leg's head arrived first: it becomes the answer (false: too late, abort it). */
  legWon(leg: HedgeLeg, status: number, rawHeaders: Buffer[], resume: () => void): boolean;
  /** A chunk of the winning leg's body for the client (false: backpressure). */
  relay(chunk: Buffer): boolean;
  /** The winning leg's answer ended: `err` when it broke mid-body. */
  winnerEnded(leg: HedgeLeg, err: Error | undefined): void;
  /**
   * A leg that did not win ended: its outcome, the status of an answer it dropped, and that
   * answer kept whole (the client's if no attempt succeeds and no retry follows).
   */
  legEnded(leg: HedgeLeg, outcome: AttemptOutcome, dropped: number, kept?: KeptAnswer): void;
  /** Whether `status` is a failed answer the exchange would retry rather than relay. */
  isRetryableAnswer(status: number): boolean;
}

/** The abort of a hedge leg that lost, or of a call that ended: a cancellation, never the upstream's fault. */
export class HedgeCancelled extends Error {
  readonly code = 'TRELLIS_HEDGE_CANCELLED';
}

/**
 * One hedged attempt, dispatched to undici beside the exchange's own attempt. A failed answer
 * (502/503/504, a retried 429) or an error makes it a loser that leaves the race quietly; a
 * cancelled leg (it lost, or the call ended) is counted `cancelled`, never against the upstream.
 */
export class HedgeLeg implements Dispatcher.DispatchHandler {
  readonly startedAt = performance.now();
  private abortFn: ((err?: Error) => void) | undefined;
  /** Aborted by the exchange (lost, or the call is over): its end is a cancellation. */
  cancelled: Error | undefined;
  private won = false;
  private dropped = 0;
  /** The failed answer being dropped, kept in case it is the best answer the call gets. */
  private kept: KeptAnswer | undefined;
  private ended = false;

  constructor(
    private readonly host: HedgeHost,
    readonly upstream: Upstream,
    readonly ticket: number,
  ) {}

  get inFlight(): boolean {
    return !this.ended;
  }

  /** Aborts the leg (it lost, or the call is over); its end is counted `cancelled` unless `err` says otherwise. */
  abort(err: Error = new HedgeCancelled('hedge lost the race')): void {
    if (this.ended) return;
    this.cancelled ??= err;
    this.abortFn?.(err);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.cancelled !== undefined) abort(this.cancelled);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    // Informational answers of a leg are not relayed: the client may never see this leg.
    if (statusCode < 200 || this.cancelled !== undefined) return true;
    if (this.host.isRetryableAnswer(statusCode)) {
      // A failed answer is read and dropped: the other attempt may still answer well.
      this.dropped = statusCode;
      this.kept = new KeptAnswer(statusCode, rawHeaders, this.upstream, performance.now() - this.startedAt);
      return true;
    }
    this.won = this.host.legWon(this, statusCode, rawHeaders, resume);
    if (!this.won) this.abort();
    return this.won;
  }

  onData(chunk: Buffer): boolean {
    if (this.won) return this.host.relay(chunk);
    this.kept?.add(chunk);
    return true;
  }

  onComplete(): void {
    this.ended = true;
    if (this.won) this.host.winnerEnded(this, undefined);
    else {
      const kept = this.kept?.overflowed === false ? this.kept : undefined;
      this.host.legEnded(this, this.dropped >= 500 ? 'http5xx' : 'success', this.dropped, kept);
    }
  }

  onError(err: Error): void {
    this.ended = true;
    if (this.won) {
      this.host.winnerEnded(this, err);
      return;
    }
    const cancelled = this.cancelled instanceof HedgeCancelled;
    this.host.legEnded(this, cancelled ? 'cancelled' : failureOf(err).outcome, 0);
  }
}
