/**
 * `npm run bench -- cqrs`: CQRS on PostgreSQL, Trellis next to Emmett in one run on the same
 * (throwaway) database and the same decider:
 *  - command handling (read the stream, decide, append with the expected version), 8 senders;
 *  - projection catch-up: a counting SQL read model fed from position 0, events/s.
 * Bounded in count and time; figures on a shared machine are noisy, compare the ratios.
 */
import { randomUUID } from 'node:crypto';
import { handleCommand } from '../src/cqrs/decider.js';
import { runProjection } from '../src/cqrs/projection.js';
import { counterDecider, countingProjection } from '../src/cqrs/testing/fixtures.js';
import { openEventStore } from '../src/stores/events/index.js';
import { fmt, measure, ratio, withBenchDatabase } from './stores/events.js';

const { getPostgreSQLEventStore, postgreSQLEventStoreConsumer, postgreSQLRawSQLProjection } = await import(
  '@event-driven-io/emmett-postgresql'
);
const { CommandHandler } = await import('@event-driven-io/emmett');
const { rawSql } = await import('@event-driven-io/dumbo');

type Ev = { type: 'Incremented'; data: { by: number } } | { type: 'Closed'; data: Record<string, never> };

await withBenchDatabase(async (url) => {
  const trellis = await openEventStore(url);
  const emmett = getPostgreSQLEventStore(url);
  const emmettHandle = CommandHandler<{ value: number; closed: boolean }, Ev>({
    evolve: counterDecider.evolve as never,
    initialState: counterDecider.initialState,
  });
  const run = randomUUID().slice(0, 8);
  const C = 8;
  const cmd = { type: 'Increment', by: 1 } as const;
  const trellisCommand = (i: number, w: number) =>
    handleCommand(trellis, `t-${run}-${w}-${i % 25}`, cmd, counterDecider);
  const emmettCommand = (i: number, w: number) =>
    emmettHandle(emmett, `e-${run}-${w}-${i % 25}`, (state) => counterDecider.decide(cmd, state) as Ev);

  await measure(200, C, 10_000, (i, w) => trellisCommand(i, w + 100));
  await measure(200, C, 10_000, (i, w) => emmettCommand(i, w + 100));
  const N = 3000;
  const tCmd = await measure(N, C, 20_000, trellisCommand);
  const eCmd = await measure(N, C, 20_000, emmettCommand);

  // More history for the catch-up: both stores get the same events.
  const batch = Array.from({ length: 100 }, () => ({ type: 'Incremented' as const, data: { by: 1 } }));
  await measure(150, 4, 30_000, (i) => trellis.append(`bulk-${i % 40}`, batch));
  await measure(150, 4, 30_000, (i) => emmett.appendToStream(`bulk-${i % 40}`, batch));

  const head = await trellis.headPosition();
  const projection = countingProjection('bench_counts', `bench_counts_${run.replace(/-/g, '')}`);
  const ac = new AbortController();
  let tEvents = 0;
  const tStart = performance.now();
  const running = runProjection(trellis, projection, {
    signal: ac.signal,
    onBatch: (b) => {
      tEvents += b.events;
      if (b.position >= head) ac.abort();
    },
  });
  await running;
  const tRate = tEvents / ((performance.now() - tStart) / 1000);

  let eEvents = 0;
  const consumer = postgreSQLEventStoreConsumer({
    connectionString: url,
    stopWhen: { noMessagesLeft: true },
    pulling: { batchSize: 500 },
  } as never);
  const table = `emmett_counts_${run.replace(/-/g, '')}`;
  await trellis.transaction((tx) =>
    tx.sql(
      `CREATE TABLE ${table} (stream_id TEXT PRIMARY KEY, events INTEGER NOT NULL, total INTEGER NOT NULL)`,
    ),
  );
  (consumer as unknown as { projector: (o: unknown) => unknown }).projector({
    processorId: `bench-${run}`,
    projection: postgreSQLRawSQLProjection({
      name: `bench-${run}`,
      canHandle: ['Incremented', 'Closed'],
      evolve: (event: { type: string; data: { by?: number }; metadata: { streamName: string } }) => {
        eEvents++;
        // Stream names and numbers are the benchmark's own, so inlining them is safe here.
        return rawSql(`INSERT INTO ${table} (stream_id, events, total) VALUES ('${event.metadata.streamName}', 1, ${Number(event.data.by ?? 0)})
          ON CONFLICT (stream_id) DO UPDATE SET events = ${table}.events + 1, total = ${table}.total + excluded.total`);
      },
    } as never),
  });
  const eStart = performance.now();
  await Promise.race([consumer.start(), new Promise((r) => setTimeout(r, 120_000))]);
  const eRate = eEvents / ((performance.now() - eStart) / 1000);
  await consumer.close();

  console.log('| operation | Trellis | Emmett | Trellis/Emmett |');
  console.log('| --- | ---: | ---: | ---: |');
  console.log(
    `| command handling (read, decide, append; 8 senders), commands/s | ${fmt(tCmd)} | ${fmt(eCmd)} | ${ratio(tCmd, eCmd)} |`,
  );
  console.log(
    `| projection catch-up (${tEvents} / ${eEvents} events, SQL read model), events/s | ${fmt(tRate)} | ${fmt(eRate)} | ${ratio(tRate, eRate)} |`,
  );
  await trellis.close();
  await emmett.close();
});
