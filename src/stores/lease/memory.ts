import { closedError, featureList } from '../kv/common.js';
import type { Lease, LeaseStore, StoreHealth } from '../types.js';
import { checkLeaseArgs, leaseLost } from './common.js';

interface Slot {
  holder: string | undefined;
  token: number;
  expiresAt: number;
}

/**
 * A LeaseStore in this process's memory: for tests and for electing among tasks of one process.
 * Tokens only grow while the process lives.
 */
export class MemoryLeaseStore implements LeaseStore {
  readonly backend = 'memory';
  readonly features = featureList(['durable', 'multiProcess'], {
    durable: 'memory: tokens restart from 1 when the process restarts',
    multiProcess: 'memory: other processes cannot see these leases',
  });
  // A released or lapsed slot stays so its token keeps growing for the next holder.
  #slots = new Map<string, Slot>();
  #closed = false;

  async acquire(name: string, holder: string, ttlMs: number): Promise<Lease | undefined> {
    this.#open();
    checkLeaseArgs(name, holder, ttlMs);
    const now = Date.now();
    const slot = this.#slots.get(name);
    if (slot?.holder !== undefined && slot.expiresAt > now) {
      if (slot.holder !== holder) return undefined;
      slot.expiresAt = now + ttlMs;
      return { name, holder, token: slot.token, expiresAt: slot.expiresAt };
    }
    const next: Slot = { holder, token: (slot?.token ?? 0) + 1, expiresAt: now + ttlMs };
    this.#slots.set(name, next);
    return { name, holder, token: next.token, expiresAt: next.expiresAt };
  }

  async renew(lease: Pick<Lease, 'name' | 'holder' | 'token'>, ttlMs: number): Promise<Lease> {
    this.#open();
    checkLeaseArgs(lease.name, lease.holder, ttlMs);
    const now = Date.now();
    const slot = this.#slots.get(lease.name);
    if (!slot || slot.holder !== lease.holder || slot.token !== lease.token) {
      throw leaseLost(lease, 'another holder or a later token has it, or it was released');
    }
    if (slot.expiresAt <= now) throw leaseLost(lease, 'it lapsed before the renewal');
    slot.expiresAt = now + ttlMs;
    return { name: lease.name, holder: lease.holder, token: slot.token, expiresAt: slot.expiresAt };
  }

  async release(lease: Pick<Lease, 'name' | 'holder' | 'token'>): Promise<boolean> {
    this.#open();
    const slot = this.#slots.get(lease.name);
    if (!slot || slot.holder !== lease.holder || slot.token !== lease.token || slot.expiresAt <= Date.now()) {
      return false;
    }
    slot.holder = undefined;
    slot.expiresAt = 0;
    return true;
  }

  async read(name: string): Promise<Lease | undefined> {
    this.#open();
    const slot = this.#slots.get(name);
    if (slot?.holder === undefined || slot.expiresAt <= Date.now()) return undefined;
    return { name, holder: slot.holder, token: slot.token, expiresAt: slot.expiresAt };
  }

  async health(): Promise<StoreHealth> {
    return this.#closed
      ? { ok: false, backend: 'memory', detail: 'closed' }
      : { ok: true, backend: 'memory' };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #open(): void {
    if (this.#closed) throw closedError('memory');
  }
}
