import type { Logger } from 'pino';

export interface Stoppable {
  /** Stop accepting work, finish what is in flight within `deadlineMs`, release resources. */
  stop(deadlineMs: number): Promise<void>;
}

export interface ShutdownOptions {
  logger?: Logger;
  /** How long in-flight work may take to finish after SIGTERM/SIGINT. */
  drainMs?: number;
  signals?: NodeJS.Signals[];
  /** Called instead of process.exit (tests). */
  exit?: (code: number) => void;
}

/**
 * Drains on SIGTERM/SIGINT: stops every part (in reverse start order), then exits 0; exits 1 if
 * draining fails or a second signal arrives (the user insists). Returns a function that removes
 * the handlers.
 */
export function drainOnSignals(parts: Stoppable[], options: ShutdownOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT'];
  const drainMs = options.drainMs ?? 10_000;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.logger?.warn({ signal }, 'second signal: exiting without waiting for in-flight work');
      exit(1);
      return;
    }
    stopping = true;
    options.logger?.info({ signal, drainMs }, 'draining: no new connections, finishing in-flight requests');
    const all = [...parts]
      .reverse()
      .reduce<Promise<void>>((p, part) => p.then(() => part.stop(drainMs)), Promise.resolve());
    all.then(
      () => {
        options.logger?.info('stopped cleanly');
        exit(0);
      },
      (err: unknown) => {
        options.logger?.error({ err }, 'drain failed');
        exit(1);
      },
    );
  };
  for (const s of signals) process.on(s, onSignal);
  return () => {
    for (const s of signals) process.off(s, onSignal);
  };
}
