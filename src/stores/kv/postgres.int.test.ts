import { randomUUID } from 'node:crypto';
import { afterAll, describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { kvConformance } from './conformance.js';
import { PostgresKeyValueStore } from './postgres.js';
import { terminateBackends } from './testing.js';

const base = await serviceUrl('postgres');
const app = `trellis-kv-test-${randomUUID().slice(0, 8)}`;
const sep = (u: string) => (u.includes('?') ? '&' : '?');
// Tests share the default table (each uses its own key prefix); the gap test gets its own table.
const url = base && `${base}${sep(base)}application_name=${app}`;
const gapTable = `trellis_kv_gap_${randomUUID().slice(0, 8)}`;

describe.skipIf(!base)('postgres', () => {
  afterAll(async () => {
    const s = await PostgresKeyValueStore.open(url!);
    await (s as unknown as { pool: { query(q: string): Promise<unknown> } }).pool.query(
      `DROP TABLE IF EXISTS ${gapTable}, ${gapTable}_log, ${gapTable}_meta; DROP FUNCTION IF EXISTS ${gapTable}_write`,
    );
    await s.close();
  });
  kvConformance('postgres', () => PostgresKeyValueStore.open(url!), {
    reopen: () => PostgresKeyValueStore.open(url!),
    gap: { open: () => PostgresKeyValueStore.open(`${url}&table=${gapTable}&retain=50`) },
    disrupt: () => terminateBackends(base!, app),
  });
});
