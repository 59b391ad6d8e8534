import type Database from 'better-sqlite3';
import type { AppendTransaction } from './types.js';

/**
 * Runs `fn` in one SQLite transaction with an AppendTransaction over `db` (for inline
 * projections and read models); rolls back when `fn` throws. `begin` is `BEGIN IMMEDIATE` where
 * other processes may write (take the write lock up front instead of failing to upgrade later).
 */
export async function sqliteTransaction<T>(
  db: Database.Database,
  begin: 'BEGIN' | 'BEGIN IMMEDIATE',
  fn: (tx: AppendTransaction) => Promise<T>,
  eventsTable?: string,
): Promise<T> {
  const tx: AppendTransaction = {
    backend: 'sqlite',
    ...(eventsTable === undefined ? {} : { eventsTable }),
    async sql<R>(text: string, params: unknown[] = []) {
      const stmt = db.prepare(text);
      if (stmt.reader) return stmt.all(...params) as R[];
      stmt.run(...params);
      return [];
    },
  };
  db.exec(begin);
  try {
    const result = await fn(tx);
    db.exec('COMMIT');
    return result;
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}
