/**
 * MessageQueue publish and consume per second on NATS JetStream and Redis Streams, next to the
 * raw clients doing the same work in the same run (raw `js.publish` / pull `consume()`, decode
 * the payload, ack; raw XADD / XREADGROUP + XACK). Each side runs twice, alternating which goes
 * first, and keeps its better run. Target: Trellis >= 0.7x of raw.
 *
 * `npm run bench -- stores queue` (QUEUE_BENCH_N=20000 messages per case by default; every case
 * also stops after 30 s). Uses TRELLIS_TEST_NATS_URL / TRELLIS_TEST_REDIS_URL or the loopback
 * defaults, and deletes every stream and key it creates.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { AckPolicy, connect } from 'nats';
import { openMessageQueue } from '../../src/stores/queue/index.js';
import { TEST_URLS } from '../../src/testing/services.js';

const N = Number(process.env.QUEUE_BENCH_N ?? 20_000);
const WINDOW = 100; // publishes in flight at once, the same for both sides
const CONCURRENCY = 256; // consumer concurrency / pull batch, the same for both sides
const TIME_LIMIT_MS = 30_000;
const payload = JSON.stringify({ order: 42, items: ['a', 'b', 'c'], note: 'x'.repeat(100) });

interface Row {
  backend: string;
  op: string;
  trellis: number;
  raw: number;
}

/** Runs `one(i)` N times with WINDOW in flight; returns operations per second. */
async function publishRate(one: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let next = 0;
  const worker = async () => {
    while (next < N && performance.now() - start < TIME_LIMIT_MS) await one(next++);
  };
  await Promise.all(Array.from({ length: WINDOW }, worker));
  return next / ((performance.now() - start) / 1000);
}

/** Starts a consumer via `start(onMessage)` and measures until N messages arrived; returns per second. */
async function consumeRate(start: (onMessage: () => void) => Promise<() => Promise<void>>): Promise<number> {
  let seen = 0;
  let done!: () => void;
  const all = new Promise<void>((r) => {
    done = r;
  });
  const t0 = performance.now();
  const stop = await start(() => {
    if (++seen === N) done();
  });
  const limit = setTimeout(done, TIME_LIMIT_MS);
  await all;
  const secs = (performance.now() - t0) / 1000;
  clearTimeout(limit);
  await stop();
  return seen / secs;
}

/** Runs each side twice, alternating which goes first, and keeps each side's better run. */
async function compare(raw: (round: number) => Promise<number>, trellis: (round: number) => Promise<number>) {
  const r1 = await raw(1);
  const t1 = await trellis(1);
  const t2 = await trellis(2);
  const r2 = await raw(2);
  return { raw: Math.max(r1, r2), trellis: Math.max(t1, t2) };
}

async function natsRows(): Promise<Row[]> {
  const u = new URL(TEST_URLS.nats);
  const servers = `${u.hostname}:${u.port || 4222}`;
  const prefix = `BQ${randomBytes(3).toString('hex')}`;
  const nc = await connect({ servers });
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const queue = await openMessageQueue(`${TEST_URLS.nats}?prefix=${prefix}`);
  const encoder = new TextEncoder();
  try {
    // Raw: one stream per round, publish awaited per message with WINDOW in flight.
    const rawSubject = (round: number) => `${prefix}.raw${round}`;
    for (const round of [1, 2]) {
      await jsm.streams.add({ name: `${prefix}_RAW${round}`, subjects: [rawSubject(round)] });
    }
    const pub = await compare(
      (round) => publishRate(() => js.publish(rawSubject(round), encoder.encode(payload))),
      (round) => publishRate(() => queue.publish(`bench${round}`, payload)),
    );
    // Consume what each side published: pull consume() + ack on the raw side.
    const cons = await compare(
      async (round) => {
        const stream = `${prefix}_RAW${round}`;
        await jsm.consumers.add(stream, { durable_name: 'raw', ack_policy: AckPolicy.Explicit });
        return consumeRate(async (on) => {
          const c = await js.consumers.get(stream, 'raw');
          const messages = await c.consume({ max_messages: CONCURRENCY });
          void (async () => {
            for await (const m of messages) {
              m.string(); // a consumer reads the payload: the same work Trellis does per message
              m.ack();
              on();
            }
          })();
          return async () => {
            await messages.close();
          };
        });
      },
      (round) =>
        consumeRate(async (on) => {
          const c = await queue.consume(`bench${round}`, 'bench', async () => on(), {
            concurrency: CONCURRENCY,
          });
          return () => c.stop();
        }),
    );
    return [
      { backend: 'nats', op: 'publish', ...pub },
      { backend: 'nats', op: 'consume+ack', ...cons },
    ];
  } finally {
    await queue.close();
    for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) await jsm.streams.delete(name);
    await nc.close();
  }
}

async function redisRows(): Promise<Row[]> {
  const prefix = `bq${randomBytes(3).toString('hex')}`;
  const redis = new Redis(TEST_URLS.redis);
  const reader = new Redis(TEST_URLS.redis);
  const queue = await openMessageQueue(`${TEST_URLS.redis}?prefix=${prefix}`);
  try {
    const raw = (round: number) => `${prefix}:raw${round}`;
    const pub = await compare(
      (round) => publishRate(() => redis.xadd(raw(round), '*', 'p', payload)),
      (round) => publishRate(() => queue.publish(`bench${round}`, payload)),
    );
    // Raw consume: XREADGROUP a batch, XACK each entry (pipelined), read the next batch.
    const cons = await compare(
      async (round) => {
        await redis.xgroup('CREATE', raw(round), 'raw', '0', 'MKSTREAM');
        return consumeRate(async (on) => {
          let stopped = false;
          const loop = (async () => {
            while (!stopped) {
              const reply = (await reader.xreadgroup(
                'GROUP',
                'raw',
                'c1',
                'COUNT',
                CONCURRENCY,
                'BLOCK',
                200,
                'STREAMS',
                raw(round),
                '>',
              )) as [string, [string, string[]][]][] | null;
              for (const [, entries] of reply ?? []) {
                for (const [id] of entries) void redis.xack(raw(round), 'raw', id).then(on);
              }
            }
          })();
          return async () => {
            stopped = true;
            await loop;
          };
        });
      },
      (round) =>
        consumeRate(async (on) => {
          const c = await queue.consume(`bench${round}`, 'bench', async () => on(), {
            concurrency: CONCURRENCY,
          });
          return () => c.stop();
        }),
    );
    return [
      { backend: 'redis', op: 'publish', ...pub },
      { backend: 'redis', op: 'consume+ack', ...cons },
    ];
  } finally {
    await queue.close();
    const keys: string[] = [];
    for await (const batch of redis.scanStream({ match: `${prefix}:*`, count: 500 })) keys.push(...batch);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    reader.disconnect();
  }
}

/** Prints one table: per backend and operation, Trellis and raw messages per second and the ratio. */
export async function run(): Promise<void> {
  const rows: Row[] = [];
  for (const [name, rowsOf] of [
    ['nats', natsRows],
    ['redis', redisRows],
  ] as const) {
    try {
      rows.push(...(await rowsOf()));
    } catch (err) {
      console.log(`${name}: skipped (${(err as Error).message})`);
    }
  }
  console.log(`MessageQueue, ${N} messages of ${payload.length} bytes per case\n`);
  console.log('| backend | operation | Trellis msg/s | raw client msg/s | ratio |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(
      `| ${r.backend} | ${r.op} | ${Math.round(r.trellis)} | ${Math.round(r.raw)} | ${(r.trellis / r.raw).toFixed(2)}x |`,
    );
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
