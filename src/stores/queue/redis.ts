import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { TrellisError } from '../../core/errors.js';
import { redactUrl, unavailable } from '../connection.js';
import { openRedis } from '../redis.js';
import type { FeatureList, PublishOptions, QueueFeature } from '../types.js';
import { BaseMessageQueue } from './base.js';
import type { Pulled, PullSource } from './consumer.js';
import {
  checkOpen,
  deadLetterHeaders,
  type ResolvedConsumeOptions,
  type ResolvedQueueOptions,
} from './options.js';

// Entry fields: p payload, k key, h headers (JSON), i publish id, n deliveries before this entry
// (an entry re-added by a delayed nack carries its history, since XPENDING counts restart).

/**
 * The publishes to one topic gathered in one turn, in order, as one script call (sent as EVALSHA):
 * a message with an id claims its dedupe key for the window (KEYS[2..], one per such message)
 * and is appended only if the claim is new. ARGV: the window, then per message a bit set of
 * what follows the payload (1 key, 2 headers, 4 id), the payload, then those values: the field
 * names are added here, so the client sends fewer strings. Returns each message's entry id, ''
 * for a duplicate. The entry's fields are the ones flatten() writes.
 */
const PUBLISH_BATCH = `
local out = {}
local a, k = 2, 2
while a <= #ARGV do
  local has = tonumber(ARGV[a])
  local f = {'p', ARGV[a + 1]}
  a = a + 2
  if has % 2 == 1 then f[#f + 1] = 'k'; f[#f + 1] = ARGV[a]; a = a + 1 end
  if has % 4 >= 2 then f[#f + 1] = 'h'; f[#f + 1] = ARGV[a]; a = a + 1 end
  local fresh = true
  if has >= 4 then
    f[#f + 1] = 'i'; f[#f + 1] = ARGV[a]; a = a + 1
    fresh = redis.call('SET', KEYS[k], '1', 'NX', 'PX', ARGV[1])
    k = k + 1
  end
  if fresh then
    out[#out + 1] = redis.call('XADD', KEYS[1], '*', unpack(f))
  else
    out[#out + 1] = ''
  end
end
return out`;

/** Messages in one publish script call at most: a script blocks the server while it runs. */
const PUBLISH_BATCH_MAX = 256;

interface PublishBatch {
  stream: string;
  keys: string[];
  args: string[];
  waiting: Array<{
    id: string | undefined;
    resolve: (r: { id: string; duplicate: boolean }) => void;
    reject: (err: unknown) => void;
  }>;
}

// Settling is fenced: only the consumer that holds the entry (per XPENDING) may nack or dead-letter
// it, so a consumer that lost it to XAUTOCLAIM after ackWait cannot move it under the new holder.
const OWNED = `
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or p[1][2] ~= ARGV[3] then return 0 end`;

/** Nack with delay: park the entry in the group's delay set, then settle it in the stream. */
const NACK = `${OWNED}
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if ARGV[6] == '1' then redis.call('XDEL', KEYS[1], ARGV[2]) end
return 1`;

/** Dead-letter: append to the dead-letter stream and settle, in one step. */
const DEAD_LETTER = `${OWNED}
redis.call('XADD', KEYS[2], '*', unpack(ARGV, 5))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
if ARGV[4] == '1' then redis.call('XDEL', KEYS[1], ARGV[2]) end
return 1`;

/** Mover: due entries of a delay set go to the group's retry stream, which only that group reads. */
const MOVE_DUE = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(m)))
  redis.call('ZREM', KEYS[1], m)
end
return #due`;

/**
 * Housekeeping for one topic stream: trim entries every group has read and settled (so a stream
 * does not grow forever), and forget consumers that hold nothing and were idle for ARGV[1] ms
 * (processes that died). A stream nobody consumes keeps everything for a group that comes later.
 */
const HOUSEKEEP = `
local function parse(id)
  local ms, seq = string.match(id, '(%d+)-(%d+)')
  return tonumber(ms), tonumber(seq)
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local bm, bs = nil, nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
  local pending = redis.call('XPENDING', KEYS[1], info['name'])
  local m, s
  if pending[1] > 0 then m, s = parse(pending[2]) else m, s = parse(info['last-delivered-id']); s = s + 1 end
  if bm == nil or m < bm or (m == bm and s < bs) then bm, bs = m, s end
  for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], info['name'])) do
    local ci = {}
    for i = 1, #c, 2 do ci[c[i]] = c[i + 1] end
    if ci['pending'] == 0 and ci['idle'] > tonumber(ARGV[1]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], info['name'], ci['name'])
    end
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%.0f', bm, bs))`;

/** A stopping consumer leaves its group unless it still holds entries (they stay claimable). */
const LEAVE = `
for _, key in ipairs(KEYS) do
  if #redis.call('XPENDING', key, ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', key, ARGV[1], ARGV[2])
  end
end
return 1`;

const FEATURES: FeatureList<QueueFeature> = {
  supports: new Set(['durable', 'multiProcess', 'dedupe', 'delayedNack']),
  lacks: {},
};

/** How often a consumer moves its group's due delayed nacks back (the delay's precision). */
const MOVE_EVERY_MS = 100;
type StreamReply = [key: string, entries: [id: string, fields: string[]][]][] | null;

/** How an entry is settled: the source's batched ack, its nack and dead-letter scripts. */
interface EntrySettle {
  ack(stream: string, entry: string): Promise<void>;
  nack(e: RedisEntry, delayMs: number): Promise<void>;
  deadLetter(e: RedisEntry, reason: string): Promise<void>;
}

/**
 * One stream entry as the consumer gets it: read straight from the flat field list, and a
 * class rather than an object of closures (one allocation per message on the hot path).
 */
class RedisEntry implements Pulled {
  id: string;
  payload = '';
  key?: string;
  headers: Record<string, string> = {};
  deliveryCount: number;
  constructor(
    private readonly settle: EntrySettle,
    readonly stream: string,
    /** The stream entry id (the public id is the publish id when there is one). */
    readonly entry: string,
    flat: string[],
    count: number,
  ) {
    let publicId: string | undefined;
    let before = 0;
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const v = flat[i + 1]!;
      switch (flat[i]) {
        case 'p':
          this.payload = v;
          break;
        case 'k':
          this.key = v;
          break;
        case 'h':
          this.headers = JSON.parse(v) as Record<string, string>;
          break;
        case 'i':
          publicId = v;
          break;
        case 'n':
          before = Number(v);
          break;
      }
    }
    this.id = publicId ?? entry;
    this.deliveryCount = before + count;
  }
  ack(): Promise<void> {
    return this.settle.ack(this.stream, this.entry);
  }
  nack(delayMs: number): Promise<void> {
    return this.settle.nack(this, delayMs);
  }
  deadLetter(reason: string): Promise<void> {
    return this.settle.deadLetter(this, reason);
  }
}

function flatten(payload: string, o: { key?: string; id?: string; headers?: Record<string, string> }, n = 0) {
  const flat = ['p', payload];
  if (o.key !== undefined) flat.push('k', o.key);
  if (o.headers && Object.keys(o.headers).length > 0) flat.push('h', JSON.stringify(o.headers));
  if (o.id !== undefined) flat.push('i', o.id);
  if (n > 0) flat.push('n', String(n));
  return flat;
}

/**
 * MessageQueue on Redis Streams: a stream per topic, a consumer group per group (XREADGROUP),
 * XAUTOCLAIM for entries whose consumer died (idle longer than ackWait), delivery counts from
 * XPENDING, delayed nacks through a per-group sorted set that a mover re-adds to a per-group
 * retry stream when due, a dead-letter stream after maxDeliver, and publish dedupe by a
 * `SET NX PX` key per id (the window). Standalone Redis or a primary; not Redis Cluster.
 */
export class RedisMessageQueue extends BaseMessageQueue {
  readonly backend = 'redis';
  readonly features = FEATURES;

  /** Publishes of this turn not sent yet, per stream (see PUBLISH_BATCH). */
  private batches = new Map<string, PublishBatch>();

  private constructor(
    private readonly redis: Redis,
    private readonly url: string,
    options: ResolvedQueueOptions,
  ) {
    super(options);
    // Defined once: ioredis sends EVALSHA and falls back to EVAL when the server lost its scripts.
    redis.defineCommand('trellisPublishBatch', { lua: PUBLISH_BATCH });
  }

  /** Connects to `redis://[user:pass@]host:port[/db]`; rejects with TRELLIS_E_STORE_UNAVAILABLE. */
  static async open(url: string, options: ResolvedQueueOptions): Promise<RedisMessageQueue> {
    const redis = await openRedis(url, {
      connectionName: 'trellis-queue',
      // Commands issued in one tick (acks of a batch, concurrent publishes) go out in one write.
      enableAutoPipelining: true,
    });
    return new RedisMessageQueue(redis, url, options);
  }

  private key(topic: string, part = ''): string {
    // The {topic} hash tag keeps a topic's keys in one slot, for Lua scripts that touch several.
    return `${this.options.prefix}:q:{${topic}}${part}`;
  }

  protected append(
    topic: string,
    payload: string,
    o: PublishOptions,
  ): Promise<{ id: string; duplicate: boolean }> {
    const stream = this.key(topic);
    let batch = this.batches.get(stream);
    if (o.id === undefined && !batch) {
      // Nothing of this topic waits to be sent, so a plain XADD keeps publish order (auto-pipelined).
      return this.call(() => this.redis.xadd(stream, '*', ...flatten(payload, o))).then((entry) => ({
        id: entry!,
        duplicate: false,
      }));
    }
    // A dedupe claim plus XADD per message, but one script call for every publish to this topic
    // in this turn (a stage's chunk, concurrent publishes): one round trip and one script run
    // instead of one per message. Later publishes of the turn join the batch, which keeps order.
    if (!batch) {
      batch = { stream, keys: [stream], args: [String(this.options.dedupeWindowMs)], waiting: [] };
      this.batches.set(stream, batch);
      queueMicrotask(() => this.sendBatch(stream));
    }
    const headers = o.headers && Object.keys(o.headers).length > 0 ? JSON.stringify(o.headers) : undefined;
    const has =
      (o.key === undefined ? 0 : 1) + (headers === undefined ? 0 : 2) + (o.id === undefined ? 0 : 4);
    batch.args.push(String(has), payload);
    if (o.key !== undefined) batch.args.push(o.key);
    if (headers !== undefined) batch.args.push(headers);
    if (o.id !== undefined) {
      batch.args.push(o.id);
      batch.keys.push(this.key(topic, `:dedupe:${o.id}`));
    }
    const id = o.id;
    const done = new Promise<{ id: string; duplicate: boolean }>((resolve, reject) => {
      batch.waiting.push({ id, resolve, reject });
    });
    if (batch.waiting.length >= PUBLISH_BATCH_MAX) this.sendBatch(stream);
    return done;
  }

  private sendBatch(stream: string): void {
    const batch = this.batches.get(stream);
    if (!batch) return;
    this.batches.delete(stream);
    const send = (
      this.redis as unknown as Record<string, (...args: (string | number)[]) => Promise<string[]>>
    ).trellisPublishBatch!;
    this.call(() => send.call(this.redis, batch.keys.length, ...batch.keys, ...batch.args)).then(
      (entries) => {
        batch.waiting.forEach((w, i) => {
          const entry = entries[i] ?? '';
          w.resolve(
            w.id === undefined ? { id: entry, duplicate: false } : { id: w.id, duplicate: entry === '' },
          );
        });
      },
      (err: unknown) => {
        for (const w of batch.waiting) w.reject(err);
      },
    );
  }

  protected async subscribe(topic: string, group: string, o: ResolvedConsumeOptions): Promise<PullSource> {
    const streams = [this.key(topic), this.key(topic, `:retry:${group}`)];
    for (const stream of streams) {
      // From 0: a new group also gets what was published before it existed.
      await this.call(() => this.redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM')).catch((err) => {
        if (!String((err as Error).cause ?? err).includes('BUSYGROUP')) throw err;
      });
    }
    // XREADGROUP BLOCK holds its connection: each consumer blocks on its own.
    const blocking = this.redis.duplicate();
    blocking.on('error', () => {});
    return this.source(topic, group, streams, o, blocking);
  }

  private source(
    topic: string,
    group: string,
    streams: string[],
    o: ResolvedConsumeOptions,
    blocking: Redis,
  ): PullSource {
    const name = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const [main, retry] = streams as [string, string];
    const delayed = this.key(topic, `:delayed:${group}`);
    const dlq = this.key(o.deadLetterTopic);
    let lastClaim = 0;

    // Acks of one event-loop turn go out as one XACK per stream with every id: one command
    // instead of one per message. Each ack() still resolves only once Redis confirmed it: they
    // share the batch's promise (one promise per XACK, not one per message).
    let acks = new Map<string, { ids: string[]; sent: Promise<void>; send: () => void }>();
    const flushAcks = () => {
      const turn = acks;
      acks = new Map();
      for (const batch of turn.values()) batch.send();
    };
    const ackBatch = (stream: string) => {
      const ids: string[] = [];
      let send!: () => void;
      const sent = new Promise<void>((resolve, reject) => {
        send = () => {
          // Retry entries are read by this group only, so an acked one can go.
          const done =
            stream === retry
              ? this.redis
                  .multi()
                  .xack(stream, group, ...ids)
                  .xdel(stream, ...ids)
                  .exec()
              : this.redis.xack(stream, group, ...ids);
          done.then(
            () => resolve(),
            (err: unknown) => {
              let failure: unknown = err;
              try {
                this.fail(err);
              } catch (translated) {
                failure = translated;
              }
              reject(failure);
            },
          );
        };
      });
      return { ids, sent, send };
    };
    const ack = (stream: string, id: string): Promise<void> => {
      let batch = acks.get(stream);
      if (!batch) {
        batch = ackBatch(stream);
        acks.set(stream, batch);
        if (acks.size === 1) setImmediate(flushAcks);
      }
      batch.ids.push(id);
      return batch.sent;
    };

    const nack = async (e: RedisEntry, delayMs: number) => {
      const again = flatten(e.payload, { key: e.key, id: e.id, headers: e.headers }, e.deliveryCount);
      // The original entry id keeps the sorted-set member unique.
      const member = JSON.stringify([...again, 'o', e.entry]);
      const isRetry = e.stream === retry ? '1' : '0';
      await this.call(() =>
        this.redis.eval(
          NACK,
          2,
          e.stream,
          delayed,
          group,
          e.entry,
          name,
          Date.now() + delayMs,
          member,
          isRetry,
        ),
      );
    };
    const deadLetter = async (e: RedisEntry, reason: string) => {
      const h = deadLetterHeaders(e.headers, { topic, group, id: e.id, deliveries: e.deliveryCount, reason });
      const flat = flatten(e.payload, { key: e.key, headers: h });
      const isRetry = e.stream === retry ? '1' : '0';
      await this.call(() =>
        this.redis.eval(DEAD_LETTER, 2, e.stream, dlq, group, e.entry, name, isRetry, ...flat),
      );
    };
    const settle: EntrySettle = { ack, nack, deadLetter };
    const toPulled = (stream: string, id: string, flat: string[], count: number): Pulled =>
      new RedisEntry(settle, stream, id, flat, count);

    /** Entries idle longer than ackWait (their consumer died or hung) move to this consumer. */
    const claimAbandoned = async (max: number): Promise<Pulled[]> => {
      const out: Pulled[] = [];
      for (const stream of streams) {
        const [, entries] = (await this.call(() =>
          this.redis.xautoclaim(stream, group, name, o.ackWaitMs, '0-0', 'COUNT', max - out.length),
        )) as [string, ([string, string[]] | null)[]];
        const live = entries.filter((e): e is [string, string[]] => e !== null && e[1] !== null);
        if (live.length === 0) continue;
        const pending = (await this.call(() =>
          this.redis.xpending(stream, group, live[0]![0], live.at(-1)![0], live.length * 2, name),
        )) as [string, string, number, number][];
        const counts = new Map(pending.map((p) => [p[0], Number(p[3])]));
        for (const [id, flat] of live) out.push(toPulled(stream, id, flat, counts.get(id) ?? 2));
        if (out.length >= max) break;
      }
      return out;
    };

    const mover = setInterval(() => {
      this.redis.eval(MOVE_DUE, 2, delayed, retry, Date.now()).catch((err) => this.options.onError(err));
    }, MOVE_EVERY_MS);
    const housekeeper = setInterval(() => {
      this.redis.eval(HOUSEKEEP, 1, main, 3_600_000).catch((err) => this.options.onError(err));
    }, this.options.sweepIntervalMs);
    housekeeper.unref();

    return {
      pull: async (max, waitMs, deliver, signal) => {
        checkOpen(this.closed, `consume ${topic}`);
        if (Date.now() - lastClaim >= o.ackWaitMs / 2) {
          lastClaim = Date.now();
          const claimed = await claimAbandoned(max);
          if (claimed.length > 0) return claimed.forEach(deliver);
        }
        const onAbort = () => blocking.disconnect();
        signal.addEventListener('abort', onAbort, { once: true });
        try {
          const reply = (await this.call(() =>
            blocking.xreadgroup(
              'GROUP',
              group,
              name,
              'COUNT',
              max,
              'BLOCK',
              Math.min(waitMs, o.ackWaitMs / 2),
              'STREAMS',
              main,
              retry,
              '>',
              '>',
            ),
          )) as StreamReply;
          for (const [stream, entries] of reply ?? []) {
            for (const [id, flat] of entries) deliver(toPulled(stream, id, flat, 1));
          }
        } finally {
          signal.removeEventListener('abort', onAbort);
        }
      },
      close: async () => {
        clearInterval(mover);
        clearInterval(housekeeper);
        blocking.disconnect();
        await this.redis.eval(LEAVE, 2, main, retry, group, name).catch((err) => this.options.onError(err));
      },
    };
  }

  /** Runs a command, turning a lost connection into STORE_UNAVAILABLE and a refusal into a clear error. */
  private async call<T>(what: () => Promise<T>): Promise<T> {
    try {
      return await what();
    } catch (err) {
      return this.fail(err);
    }
  }

  /** Rethrows a driver error as a TrellisError: a refusal, or the server being unreachable. */
  private readonly fail = (err: unknown): never => {
    if (err instanceof TrellisError) throw err;
    if ((err as Error).name === 'ReplyError') {
      throw new TrellisError(
        'TRELLIS_E_QUEUE_REJECTED',
        `${redactUrl(this.url)}: Redis refused the command: ${(err as Error).message} (a key of another type under the "${this.options.prefix}" prefix? choose another ?prefix=)`,
        { cause: err },
      );
    }
    throw unavailable('redis', this.url, err);
  };

  protected async ping(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  protected async disconnect(): Promise<void> {
    this.redis.disconnect();
  }
}
