import type { Etcd3, IKeyValue } from 'etcd3';
import { etcdError, openEtcd, parseEtcdUrl } from '../etcd.js';
import { closedError, featureList, storeCall } from '../kv/common.js';
import { EtcdServerStore } from '../server-store.js';
import type { Lease, LeaseStore } from '../types.js';
import { checkLeaseArgs, leaseLost } from './common.js';

/**
 * LeaseStore on etcd (`etcd://host:2379?namespace=trellis/lease/`). A lease is one key attached
 * to an etcd lease, so etcd itself deletes it when the TTL runs out (TTLs are whole seconds,
 * rounded up, and etcd may raise very short ones to its minimum).
 *
 * Fencing token: the key's create_revision. Every acquisition creates the key anew (it is deleted
 * on release or expiry), and etcd's revision is a cluster-wide counter that only grows and
 * survives restarts and compaction, so each new holder's token is larger than every earlier one.
 * Renewals re-attach the same key to a fresh etcd lease, which keeps create_revision (the token).
 */
export class EtcdLeaseStore extends EtcdServerStore implements LeaseStore {
  readonly features = featureList(['durable', 'multiProcess']);

  private constructor(
    /** The etcd3 client. */
    readonly client: Etcd3,
    private readonly url: string,
    private readonly ns: string,
  ) {
    super();
  }

  /** Connects and checks the cluster answers. */
  static async open(url: string): Promise<EtcdLeaseStore> {
    const { params } = parseEtcdUrl(url);
    const client = await openEtcd(url);
    return new EtcdLeaseStore(client, url, params.get('namespace') ?? 'trellis/lease/');
  }

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined> {
    this.#open();
    checkLeaseArgs(name, holder, ttlMs);
    const key = this.#key(name);
    let current = await this.#get(key);
    if (current && (await this.#remaining(current)) < 0) {
      // Lapsed, but etcd has not deleted it yet: remove exactly that version of the key, then take
      // it anew. A renew moves the key to a fresh etcd lease and revokes the old one, so the TTL we
      // just read may be of a lease the holder already left: comparing mod_revision (which every
      // renew bumps) keeps a live, just-renewed lease from being deleted under its holder.
      const lapsed = current;
      const res = await this.#run(() =>
        this.client.kv.txn({
          compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: lapsed.mod_revision }],
          success: [{ request_delete_range: { key } }],
        }),
      );
      current = res.succeeded ? undefined : await this.#get(key);
      if (current && (await this.#remaining(current)) < 0) return undefined;
    }
    if (current) {
      if (current.value.toString() !== holder) return undefined;
      return this.renew({ name, holder, token: Number(current.create_revision) }, ttlMs).catch(() =>
        this.acquire(name, holder, ttlMs),
      );
    }
    const { id, ttlSec } = await this.#grant(ttlMs);
    const res = await this.#run(() =>
      this.client.kv.txn({
        compare: [{ key, target: 'Create', result: 'Equal', create_revision: 0 }],
        success: [{ request_put: { key, value: Buffer.from(holder), lease: id } }],
      }),
    );
    if (!res.succeeded) {
      await this.#revoke(id);
      // Someone created it between our read and our write: it is theirs (or ours from a race).
      const now = await this.#get(key);
      if (now?.value.toString() !== holder) return undefined;
      return { name, holder, token: Number(now.create_revision), expiresAt: Date.now() + ttlSec * 1000 };
    }
    return { name, holder, token: Number(res.header.revision), expiresAt: Date.now() + ttlSec * 1000 };
  }

  async renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease> {
    this.#open();
    checkLeaseArgs(lease.name, lease.holder, ttlMs);
    const key = this.#key(lease.name);
    const current = await this.#get(key);
    if (!this.#matches(current, lease) || (await this.#remaining(current)) < 0) {
      throw leaseLost(lease, 'it lapsed, was released, or another holder took it');
    }
    const { id, ttlSec } = await this.#grant(ttlMs);
    // Move the key to a fresh etcd lease with the new TTL only if it is still this holder's.
    const res = await this.#run(() =>
      this.client.kv.txn({
        compare: [
          { key, target: 'Create', result: 'Equal', create_revision: lease.token },
          { key, target: 'Value', result: 'Equal', value: Buffer.from(lease.holder) },
        ],
        success: [{ request_put: { key, value: Buffer.from(lease.holder), lease: id } }],
      }),
    );
    if (!res.succeeded) {
      await this.#revoke(id);
      throw leaseLost(lease, 'it lapsed, was released, or another holder took it');
    }
    if (current!.lease !== '0') await this.#revoke(current!.lease);
    return {
      name: lease.name,
      holder: lease.holder,
      token: lease.token,
      expiresAt: Date.now() + ttlSec * 1000,
    };
  }

  async release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean> {
    this.#open();
    const key = this.#key(lease.name);
    const current = await this.#get(key);
    if (!this.#matches(current, lease) || (await this.#remaining(current)) < 0) return false;
    const res = await this.#run(() =>
      this.client.kv.txn({
        compare: [
          { key, target: 'Create', result: 'Equal', create_revision: lease.token },
          { key, target: 'Value', result: 'Equal', value: Buffer.from(lease.holder) },
        ],
        success: [{ request_delete_range: { key } }],
      }),
    );
    if (res.succeeded && current!.lease !== '0') await this.#revoke(current!.lease);
    return res.succeeded;
  }

  async read(name: string): Promise<Lease | undefined> {
    this.#open();
    let current = await this.#get(this.#key(name));
    if (!current) return undefined;
    let ttl = await this.#remaining(current);
    if (ttl < 0) {
      // The etcd lease we read may have been replaced by a concurrent renew: look once more.
      current = await this.#get(this.#key(name));
      if (!current) return undefined;
      ttl = await this.#remaining(current);
      if (ttl < 0) return undefined;
    }
    return {
      name,
      holder: current.value.toString(),
      token: Number(current.create_revision),
      expiresAt: Date.now() + ttl * 1000,
    };
  }

  protected toError(err: unknown): unknown {
    return etcdError(this.url, err);
  }

  #matches(kv: IKeyValue | undefined, lease: Pick<Lease, 'holder' | 'token'>): kv is IKeyValue {
    return !!kv && kv.value.toString() === lease.holder && Number(kv.create_revision) === lease.token;
  }

  async #get(key: Buffer): Promise<IKeyValue | undefined> {
    const res = await this.#run(() => this.client.kv.range({ key }));
    return res.kvs[0];
  }

  /** Seconds the key's etcd lease has left; -1 once it expired (etcd deletes the key soon after). */
  async #remaining(kv: IKeyValue): Promise<number> {
    if (kv.lease === '0') return -1;
    const res = await this.#run(() => this.client.leaseClient.leaseTimeToLive({ ID: kv.lease }));
    return Number(res.TTL);
  }

  async #grant(ttlMs: number): Promise<{ id: string; ttlSec: number }> {
    const res = await this.#run(() =>
      this.client.leaseClient.leaseGrant({ TTL: Math.ceil(ttlMs / 1000), ID: 0 }),
    );
    return { id: res.ID, ttlSec: Number(res.TTL) };
  }

  async #revoke(id: string): Promise<void> {
    // A lease that already lapsed cannot be revoked; that is fine.
    await this.client.leaseClient.leaseRevoke({ ID: id }).catch(() => {});
  }

  #key(name: string): Buffer {
    return Buffer.from(this.ns + name);
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return storeCall(
      'etcd',
      () => this.closed,
      (err) => etcdError(this.url, err),
      fn,
    );
  }

  #open(): void {
    if (this.closed) throw closedError('etcd');
  }
}
