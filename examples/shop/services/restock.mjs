// The nightly-style restock report, a `schedule` workload of `trellis host` (host.yaml). Two
// candidates declare it (restock-a, restock-b) on one leader election: only the leader runs it,
// and if it goes the other takes over. It asks the inventory for every product's stock and
// writes the products that run low to restock-report.json in the shop's data folder.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const PRODUCTS = [1, 2, 3, 4];
const LOW = 5;

export default async function restock(env) {
  const { inventory, data, instance } = env.config;
  const levels = await Promise.all(
    PRODUCTS.map(async (id) => {
      const res = await fetch(`${inventory}/stock/${id}`, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) throw new Error(`inventory answered ${res.status} for product ${id}`);
      return res.json();
    }),
  );
  const report = {
    at: new Date().toISOString(),
    ranBy: instance ? `${instance}/${env.name}` : env.name,
    low: levels
      .filter((l) => l.available < LOW)
      .map(({ productId, available }) => ({ productId, available })),
  };
  // Written whole or not at all: a reader never sees half a report.
  const file = join(data, 'restock-report.json');
  writeFileSync(`${file}.tmp`, `${JSON.stringify(report, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}
