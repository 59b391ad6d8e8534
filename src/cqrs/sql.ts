import type { AppendTransaction } from '../stores/events/types.js';

/**
 * Runs SQL written with PostgreSQL placeholders ($1, $2 … each used once, in order) on either
 * backend: SQLite takes `?`. Only for Trellis's own small statements; user read models write
 * their own backend's SQL.
 */
export function sql<R = Record<string, unknown>>(
  tx: AppendTransaction,
  text: string,
  params: unknown[] = [],
) {
  return tx.sql<R>(tx.backend === 'sqlite' ? text.replace(/\$\d+/g, '?') : text, params);
}
