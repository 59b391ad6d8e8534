/**
 * A small domain used by the CQRS tests, the e2e test and the benchmark: a counter (for
 * lost-update races) and a counting read model (for double-apply checks). Not exported.
 */
import { rejectCommand } from '../errors.js';
import type { Projection } from '../projection.js';
import { sql } from '../sql.js';
import type { Decider, DomainEvent } from '../types.js';

export type CounterCommand = { type: 'Increment'; by: number } | { type: 'Close' };
export type CounterEvent =
  | DomainEvent<'Incremented', { by: number }>
  | DomainEvent<'Closed', Record<string, never>>;
export interface CounterState {
  value: number;
  closed: boolean;
}

export const counterDecider: Decider<CounterCommand, CounterState, CounterEvent> = {
  initialState: () => ({ value: 0, closed: false }),
  decide(command, state): CounterEvent {
    if (state.closed) throw rejectCommand('the counter is closed', { value: state.value });
    if (command.type === 'Close') return { type: 'Closed', data: {} };
    if (command.by <= 0) throw rejectCommand('increment by a positive number');
    return { type: 'Incremented', data: { by: command.by } };
  },
  evolve(state, event) {
    if (event.type === 'Closed') return { ...state, closed: true };
    return { ...state, value: state.value + event.data.by };
  },
};

/** Counts events and sums `by` per stream: any double-applied or skipped event shows. */
export function countingProjection(name = 'counts', table = 'stream_counts'): Projection {
  return {
    name,
    tables: [table],
    async setup(tx, t) {
      await sql(
        tx,
        `CREATE TABLE ${t(table)} (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL, last_position BIGINT NOT NULL)`,
      );
    },
    async apply(events, tx, t) {
      for (const e of events) {
        const by = Number((e.data as { by?: number })?.by ?? 0);
        await sql(
          tx,
          `INSERT INTO ${t(table)} (stream_id, events, total, last_position) VALUES ($1, 1, $2, $3)
           ON CONFLICT (stream_id) DO UPDATE SET events = ${t(table)}.events + 1, total = ${t(table)}.total + excluded.total, last_position = excluded.last_position`,
          [e.streamId, by, e.position],
        );
      }
    },
  };
}
