import type { Redis } from 'ioredis';
import { closedError, featureList, storeCall } from '../kv/common.js';
import { openRedis, parseRedisUrl, redisError, redisNamespace } from '../redis.js';
import { RedisServerStore } from '../server-store.js';
import type { Lease, LeaseStore } from '../types.js';
import { checkLeaseArgs, leaseLost } from './common.js';

// KEYS: the lease hash (expires by PEXPIRE), the name's last token (never expires).
// A new token is the larger of last + 1 and the server's clock in microseconds: tokens grow by
// the counter while Redis keeps its data, and still grow if it loses it (restart without
// persistence), as long as the server's clock does not go back. Microseconds since 1970 stay
// below 2^53, so tokens are exact JavaScript numbers.
const ACQUIRE = `
local cur = redis.call('HMGET', KEYS[1], 'h', 't')
if cur[1] then
  if cur[1] ~= ARGV[1] then return false end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {tonumber(cur[2]), tonumber(ARGV[2])}
end
local now = redis.call('TIME')
local t = math.max((tonumber(redis.call('GET', KEYS[2])) or 0) + 1, tonumber(now[1]) * 1000000 + tonumber(now[2]))
redis.call('SET', KEYS[2], t)
redis.call('HSET', KEYS[1], 'h', ARGV[1], 't', t)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {t, tonumber(ARGV[2])}`;

const RENEW = `
local cur = redis.call('HMGET', KEYS[1], 'h', 't')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`;

const RELEASE = `
local cur = redis.call('HMGET', KEYS[1], 'h', 't')
if cur[1] ~= ARGV[1] or cur[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1`;

const READ = `
local cur = redis.call('HMGET', KEYS[1], 'h', 't')
if not cur[1] then return false end
return {cur[1], tonumber(cur[2]), redis.call('PTTL', KEYS[1])}`;

type Scripted = Redis & {
  trellisLeaseAcquire(...a: (string | number)[]): Promise<[number, number] | null>;
  trellisLeaseRenew(...a: (string | number)[]): Promise<number>;
  trellisLeaseRelease(...a: (string | number)[]): Promise<number>;
  trellisLeaseRead(...a: string[]): Promise<[string, number, number] | null>;
};

/**
 * LeaseStore on Redis (`redis://host:6379/0?namespace=trellis:lease`). A lease is a hash that
 * expires with PEXPIRE; its fencing token is max(last token + 1, server time in µs), kept per
 * name in a key that never expires (see ACQUIRE).
 */
export class RedisLeaseStore extends RedisServerStore implements LeaseStore {
  readonly features = featureList(['durable', 'multiProcess']);
  readonly #tag: string;

  private constructor(
    protected readonly redis: Scripted,
    private readonly url: string,
    ns: string,
  ) {
    super();
    this.#tag = `{${ns}}`;
  }

  /** Connects (failing clearly when the server is away) and loads the scripts. */
  static async open(url: string): Promise<RedisLeaseStore> {
    const { params } = parseRedisUrl(url);
    const redis = (await openRedis(url)) as Scripted;
    redis.defineCommand('trellisLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
    redis.defineCommand('trellisLeaseRenew', { numberOfKeys: 1, lua: RENEW });
    redis.defineCommand('trellisLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    redis.defineCommand('trellisLeaseRead', { numberOfKeys: 1, lua: READ });
    return new RedisLeaseStore(redis, url, redisNamespace(params, 'trellis:lease'));
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined> {
    this.#open();
    checkLeaseArgs(name, holder, ttlMs);
    const now = Date.now();
    const r = await this.#run(() =>
      this.redis.trellisLeaseAcquire(`${this.#tag}:l:${name}`, `${this.#tag}:t:${name}`, holder, ttlMs),
    );
    return r ? { name, holder, token: r[0], expiresAt: now + r[1] } : undefined;
  }

  async renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease> {
    this.#open();
    checkLeaseArgs(lease.name, lease.holder, ttlMs);
    const now = Date.now();
    const ok = await this.#run(() =>
      this.redis.trellisLeaseRenew(`${this.#tag}:l:${lease.name}`, lease.holder, String(lease.token), ttlMs),
    );
    if (!ok) throw leaseLost(lease, 'it lapsed, was released, or another holder took it');
    return { name: lease.name, holder: lease.holder, token: lease.token, expiresAt: now + ttlMs };
  }

  async release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean> {
    this.#open();
    const ok = await this.#run(() =>
      this.redis.trellisLeaseRelease(`${this.#tag}:l:${lease.name}`, lease.holder, String(lease.token)),
    );
    return ok === 1;
  }

  async read(name: string): Promise<Lease | undefined> {
    this.#open();
    const now = Date.now();
    const r = await this.#run(() => this.redis.trellisLeaseRead(`${this.#tag}:l:${name}`));
    return r ? { name, holder: r[0], token: r[1], expiresAt: now + r[2] } : undefined;
  }

  protected toError(err: unknown): unknown {
    return redisError(this.url, err);
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
