import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isTrellisError, TrellisError } from '../../core/errors.js';
import { openRedis, parseRedisUrl, redisError, redisNamespace } from '../redis.js';
import { RedisServerStore } from '../server-store.js';
import type { KeyValueStore, KvChange, KvEntry, KvPutOptions, KvWatchOptions } from '../types.js';
import {
  checkKey,
  checkRevision,
  checkValue,
  closedError,
  conflict,
  DEFAULT_MAX_VALUE_BYTES,
  DEFAULT_RETAIN_CHANGES,
  featureList,
  intParam,
  storeCall,
  WATCH_OUTAGE_MS,
  watchGap,
} from './common.js';
import { WriteBatcher } from './write-batch.js';

// Every key of a store shares one hash tag ({ns}) so the scripts also run on Redis Cluster.
// KEYS: rev counter, entry hash, key index (sorted set), change stream, epoch. The epoch is a
// random id set whenever the counter starts at 1: if Redis loses its data (restart without
// persistence, a flush), revisions start again, and watchers notice the epoch changed.
// A batch of writes in call order (WriteBatcher): one script call, so a burst of concurrent puts
// costs one round trip and one script run. KEYS: rev counter, key index, change stream, epoch,
// then one entry hash per write. ARGV: retain, epoch id, then per write: type (p/d), key, value,
// expected revision ('' for none). Returns per write: ok, revision, createRevision, version.
const WRITE = `
local out = {}
for i = 5, #KEYS do
  local a = (i - 5) * 4 + 3
  local t, k, v, exp = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local old = redis.call('HMGET', KEYS[i], 'r', 'c', 'n')
  local oldRev = tonumber(old[1]) or 0
  if exp ~= '' and tonumber(exp) ~= oldRev then
    table.insert(out, 0); table.insert(out, oldRev); table.insert(out, 0); table.insert(out, 0)
  elseif t == 'd' and oldRev == 0 then
    table.insert(out, 0); table.insert(out, -1); table.insert(out, 0); table.insert(out, 0)
  else
    local rev = redis.call('INCR', KEYS[1])
    if rev == 1 then redis.call('SET', KEYS[4], ARGV[2]) end
    if t == 'd' then
      redis.call('DEL', KEYS[i])
      redis.call('ZREM', KEYS[2], k)
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], rev .. '-0', 't', 'd', 'k', k)
      table.insert(out, 1); table.insert(out, rev); table.insert(out, 0); table.insert(out, 0)
    else
      local c = tonumber(old[2]) or rev
      local n = (tonumber(old[3]) or 0) + 1
      redis.call('HSET', KEYS[i], 'v', v, 'r', rev, 'c', c, 'n', n)
      if not old[1] then redis.call('ZADD', KEYS[2], 0, k) end
      redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[1], rev .. '-0', 't', 'p', 'k', k, 'v', v)
      table.insert(out, 1); table.insert(out, rev); table.insert(out, c); table.insert(out, n)
    end
  end
end
return out`;

// KEYS: rev counter, key index. ARGV: lex min, lex max, entry-key prefix. One script: one snapshot.
const LIST = `
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2])
local out = {redis.call('GET', KEYS[1]) or '0'}
for _, k in ipairs(keys) do
  local e = redis.call('HMGET', ARGV[3] .. k, 'v', 'r', 'c', 'n')
  if e[2] then
    table.insert(out, k); table.insert(out, e[1]); table.insert(out, e[2]); table.insert(out, e[3]); table.insert(out, e[4])
  end
end
return out`;

interface WriteOp {
  type: 'p' | 'd';
  key: string;
  value: string;
  expected: number | undefined;
}

/** ok (1/0), revision (or the current one on a failed CAS, -1 for deleting a missing key), createRevision, version. */
type WriteOutcome = [number, number, number, number];

type Scripted = Redis & {
  trellisKvWrite(numKeys: number, ...args: (string | number)[]): Promise<number[]>;
  trellisKvList(...args: (string | Buffer)[]): Promise<string[]>;
};

/**
 * KeyValueStore on Redis (`redis://host:6379/0?namespace=trellis:kv&retain=100000`). Lua scripts
 * make compare-and-set and the revision counter atomic; every change is also appended to a capped
 * stream (XADD MAXLEN ~ retain) with the revision as its id, which watchers read with XREAD BLOCK.
 * Durable as far as the server's persistence (AOF/RDB) is.
 */
export class RedisKeyValueStore extends RedisServerStore implements KeyValueStore {
  readonly features = featureList(['watch', 'compareAndSet', 'durable', 'multiProcess']);
  #watchers = new Set<Redis>();
  readonly #writes = new WriteBatcher<WriteOp, WriteOutcome>((ops) => this.#writeBatch(ops));
  readonly #k: { rev: string; idx: string; log: string; entry: string; epoch: string };

  private constructor(
    protected readonly redis: Scripted,
    private readonly url: string,
    ns: string,
    private readonly opts: { maxValueBytes: number; retain: number; pollMs: number },
  ) {
    super();
    const tag = `{${ns}}`;
    this.#k = {
      rev: `${tag}:rev`,
      idx: `${tag}:idx`,
      log: `${tag}:log`,
      entry: `${tag}:k:`,
      epoch: `${tag}:epoch`,
    };
  }

  /** Connects (failing clearly when the server is away) and loads the scripts. */
  static async open(url: string): Promise<RedisKeyValueStore> {
    const { params } = parseRedisUrl(url);
    const opts = {
      maxValueBytes: intParam(params, 'maxValueBytes', DEFAULT_MAX_VALUE_BYTES),
      retain: intParam(params, 'retain', DEFAULT_RETAIN_CHANGES),
      pollMs: intParam(params, 'pollMs', 5000),
    };
    // Concurrent reads (HMGET per get) issued in one tick go out in one write and one reply read,
    // as the queue's client does: the sidecar's state API under load issues many at once.
    const redis = (await openRedis(url, { enableAutoPipelining: true })) as Scripted;
    // The key count varies with the batch, so it is passed first on every call.
    redis.defineCommand('trellisKvWrite', { lua: WRITE });
    redis.defineCommand('trellisKvList', { numberOfKeys: 2, lua: LIST });
    return new RedisKeyValueStore(redis, url, redisNamespace(params, 'trellis:kv'), opts);
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.#open();
    checkKey(key);
    const [v, r, c, n] = await this.#run(() => this.redis.hmget(this.#k.entry + key, 'v', 'r', 'c', 'n'));
    if (r === null || r === undefined) return undefined;
    return { key, value: v ?? '', revision: Number(r), createRevision: Number(c), version: Number(n) };
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<KvEntry> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    checkValue(key, value, this.opts.maxValueBytes);
    const expected = options.expectedRevision;
    const [ok, rev, c, n] = await this.#writes.submit({ type: 'p', key, value, expected }, value.length);
    if (!ok) throw conflict(key, expected!, rev);
    return { key, value, revision: rev, createRevision: c, version: n };
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<boolean> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    const expected = options.expectedRevision;
    const [ok, rev] = await this.#writes.submit({ type: 'd', key, value: '', expected });
    if (!ok && rev !== -1) throw conflict(key, expected!, rev);
    return ok === 1;
  }

  /** Writes a batch in one script call; a failed CAS comes back as ok = 0 for that write alone. */
  async #writeBatch(ops: WriteOp[]): Promise<WriteOutcome[]> {
    const keys = [this.#k.rev, this.#k.idx, this.#k.log, this.#k.epoch];
    const args: (string | number)[] = [this.opts.retain, randomUUID()];
    for (const op of ops) {
      keys.push(this.#k.entry + op.key);
      args.push(op.type, op.key, op.value, op.expected === undefined ? '' : String(op.expected));
    }
    const flat = await this.#run(() => this.redis.trellisKvWrite(keys.length, ...keys, ...args));
    return ops.map((_, i) => flat.slice(i * 4, i * 4 + 4) as WriteOutcome);
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    this.#open();
    // Keys are UTF-8, whose bytes never reach 0xff: "[prefix" … "[prefix\xff" spans the prefix.
    const min = prefix ? `[${prefix}` : '-';
    const max = prefix ? Buffer.concat([Buffer.from(`[${prefix}`), Buffer.from([0xff])]) : '+';
    const out = await this.#run(() =>
      this.redis.trellisKvList(this.#k.rev, this.#k.idx, min, max, this.#k.entry),
    );
    const entries: KvEntry[] = [];
    for (let i = 1; i + 4 < out.length; i += 5) {
      entries.push({
        key: out[i]!,
        value: out[i + 1]!,
        revision: Number(out[i + 2]),
        createRevision: Number(out[i + 3]),
        version: Number(out[i + 4]),
      });
    }
    return { entries, revision: Number(out[0]) };
  }

  watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    checkRevision('fromRevision', options.fromRevision);
    const start =
      options.fromRevision !== undefined
        ? Promise.resolve(options.fromRevision)
        : (async () => {
            this.#open();
            return Number((await this.#run(() => this.redis.get(this.#k.rev))) ?? 0);
          })();
    start.catch(() => {});
    return { [Symbol.asyncIterator]: () => this.#iterate(prefix, start, options.signal) };
  }

  async *#iterate(prefix: string, start: Promise<number>, signal?: AbortSignal): AsyncGenerator<KvChange> {
    let after = await start;
    this.#open();
    // XREAD BLOCK holds its connection, so each watcher gets its own; aborting disconnects it.
    const conn = this.redis.duplicate({ enableAutoPipelining: false });
    conn.on('error', () => {});
    this.#watchers.add(conn);
    const stop = () => conn.disconnect();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      let epoch = await this.#checkStart(conn, after);
      // After a reconnect or a quiet spell: did Redis lose the data the revisions count?
      const sameData = async () => {
        const now = await conn.get(this.#k.epoch);
        if (epoch === null) epoch = now;
        else if (now !== epoch) {
          throw watchGap(after, undefined, 'Redis lost its data (a restart without persistence or a flush)');
        }
      };
      let outage = 0;
      // Set after an error or a quiet spell: check the epoch before trusting the next read.
      let verify = false;
      while (!signal?.aborted && !this.closed) {
        let res: [string, [string, string[]][]][] | null;
        try {
          if (verify) {
            await sameData();
            verify = false;
          }
          res = (await conn.xread(
            'COUNT',
            1000,
            'BLOCK',
            this.opts.pollMs,
            'STREAMS',
            this.#k.log,
            `${after}-0`,
          )) as [string, [string, string[]][]][] | null;
          outage = 0;
        } catch (err) {
          if (signal?.aborted || this.closed) return;
          if (isTrellisError(err, 'TRELLIS_E_KV_WATCH_GAP')) throw err;
          // ioredis reconnects by itself and `after` is exact: bridge a short outage by retrying.
          const mapped = redisError(this.url, err);
          outage ||= Date.now();
          if (
            !isTrellisError(mapped, 'TRELLIS_E_STORE_UNAVAILABLE') ||
            Date.now() - outage > WATCH_OUTAGE_MS
          ) {
            throw mapped;
          }
          verify = true;
          await pause(250, signal);
          continue;
        }
        if (!res) {
          verify = true;
          continue;
        }
        // One GET per batch: entries from a Redis that lost its data must not pass as the old ones.
        await this.#run(sameData);
        for (const [id, fields] of res[0]![1]) {
          const rev = Number(id.slice(0, id.indexOf('-')));
          // Revisions are consecutive in the stream; a jump means trimmed entries were missed.
          if (rev !== after + 1)
            throw watchGap(after, rev, 'the change stream was trimmed past it (raise retain)');
          after = rev;
          const f = fieldsOf(fields);
          if (!f.k.startsWith(prefix)) continue;
          yield f.t === 'p'
            ? { type: 'put', key: f.k, value: f.v ?? '', revision: rev }
            : { type: 'delete', key: f.k, revision: rev };
          if (signal?.aborted || this.closed) return;
        }
      }
    } finally {
      signal?.removeEventListener('abort', stop);
      this.#watchers.delete(conn);
      conn.disconnect();
    }
  }

  /** Fails fast when the stream no longer reaches back to `after`, or the counter went backwards. */
  async #checkStart(conn: Redis, after: number): Promise<string | null> {
    const [head, first, epoch] = await this.#run(() =>
      Promise.all([
        conn.get(this.#k.rev),
        conn.xrange(this.#k.log, '-', '+', 'COUNT', 1),
        conn.get(this.#k.epoch),
      ]),
    );
    const current = Number(head ?? 0);
    if (after > current) {
      throw watchGap(
        after,
        current,
        `the store's revision is only ${current} (was Redis restarted without persistence?)`,
      );
    }
    if (after === current) return epoch;
    const oldest = first[0] ? Number(first[0][0].split('-')[0]) : current + 1;
    if (oldest > after + 1)
      throw watchGap(after, oldest, 'the change stream was trimmed past it (raise retain)');
    return epoch;
  }

  protected toError(err: unknown): unknown {
    return redisError(this.url, err);
  }

  protected override async beforeClose(): Promise<void> {
    // Writes accepted before close() are written, not dropped.
    await this.#writes.idle();
    for (const w of this.#watchers) w.disconnect();
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return storeCall(
      'redis',
      () => this.closed,
      (err) => redisError(this.url, err),
      fn,
    );
  }

  #open(): void {
    if (this.closed) throw closedError('redis');
  }
}

function fieldsOf(flat: string[]): { t: string; k: string; v?: string } {
  const o: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) o[flat[i]!] = flat[i + 1]!;
  if (o.t === undefined || o.k === undefined) {
    throw new TrellisError(
      'TRELLIS_E_KV_WATCH_GAP',
      'the change stream holds an entry Trellis did not write',
    );
  }
  return o as { t: string; k: string; v?: string };
}

/** Waits `ms`, or less if `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
