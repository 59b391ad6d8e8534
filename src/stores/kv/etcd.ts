import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { TrellisError } from '../../core/errors.js';
import { etcdError, openEtcd, parseEtcdUrl, prefixEnd } from '../etcd.js';
import { EtcdServerStore } from '../server-store.js';
import type { KeyValueStore, KvChange, KvEntry, KvPutOptions, KvWatchOptions } from '../types.js';
import {
  checkKey,
  checkRevision,
  checkValue,
  closedError,
  conflict,
  DEFAULT_MAX_VALUE_BYTES,
  featureList,
  intParam,
  storeCall,
  watchGap,
} from './common.js';

/** etcd refuses requests over 1.5 MiB (--max-request-bytes); leave room for the key and framing. */
const ETCD_MAX_VALUE_BYTES = 1536 * 1024 - 4096;

/**
 * KeyValueStore on etcd (`etcd://host:2379?namespace=trellis/kv/`). Revisions are etcd's own:
 * store-wide across the cluster, so they also move when other applications write to etcd.
 * Watches are native (from a start revision); when etcd has compacted past it, the watch throws
 * TRELLIS_E_KV_WATCH_GAP. etcd caps a request at 1.5 MiB by default, so values stay at 1 MiB.
 */
export class EtcdKeyValueStore extends EtcdServerStore implements KeyValueStore {
  readonly features = featureList(['watch', 'compareAndSet', 'durable', 'multiProcess']);
  #watchers = new Set<Watcher>();

  private constructor(
    /** The etcd3 client (exposed for tests that compact). */
    readonly client: Etcd3,
    private readonly url: string,
    private readonly ns: Buffer,
    private readonly maxValueBytes: number,
  ) {
    super();
  }

  /** Connects and checks the cluster answers. */
  static async open(url: string): Promise<EtcdKeyValueStore> {
    const { params } = parseEtcdUrl(url);
    const maxValueBytes = intParam(params, 'maxValueBytes', DEFAULT_MAX_VALUE_BYTES);
    if (maxValueBytes > ETCD_MAX_VALUE_BYTES) {
      throw new TrellisError(
        'TRELLIS_E_STORE_URL_INVALID',
        `maxValueBytes=${maxValueBytes} is over what etcd accepts in one request by default: use at most ${ETCD_MAX_VALUE_BYTES}`,
      );
    }
    const client = await openEtcd(url);
    return new EtcdKeyValueStore(
      client,
      url,
      Buffer.from(params.get('namespace') ?? 'trellis/kv/'),
      maxValueBytes,
    );
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.#open();
    checkKey(key);
    const res = await this.#run(() => this.client.kv.range({ key: this.#key(key) }));
    return res.kvs[0] && this.#entry(res.kvs[0]);
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<KvEntry> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    checkValue(key, value, this.maxValueBytes);
    const k = this.#key(key);
    const put = { key: k, value: Buffer.from(value), prev_kv: true };
    if (options.expectedRevision === undefined) {
      const res = await this.#run(() => this.client.kv.put(put));
      return this.#written(key, value, Number(res.header.revision), res.prev_kv);
    }
    const res = await this.#run(() =>
      this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: options.expectedRevision }],
        success: [{ request_put: put }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) {
      const actual = res.responses[0]?.response_range.kvs[0];
      throw conflict(key, options.expectedRevision, Number(actual?.mod_revision ?? 0));
    }
    return this.#written(key, value, Number(res.header.revision), res.responses[0]?.response_put.prev_kv);
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<boolean> {
    this.#open();
    checkKey(key);
    checkRevision('expectedRevision', options.expectedRevision);
    const k = this.#key(key);
    if (options.expectedRevision === undefined) {
      const res = await this.#run(() => this.client.kv.deleteRange({ key: k }));
      return Number(res.deleted) > 0;
    }
    const res = await this.#run(() =>
      this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: options.expectedRevision }],
        success: [{ request_delete_range: { key: k } }],
        failure: [{ request_range: { key: k } }],
      }),
    );
    if (!res.succeeded) {
      const actual = res.responses[0]?.response_range.kvs[0];
      throw conflict(key, options.expectedRevision, Number(actual?.mod_revision ?? 0));
    }
    return Number(res.responses[0]?.response_delete_range.deleted ?? 0) > 0;
  }

  async list(prefix: string): Promise<{ entries: KvEntry[]; revision: number }> {
    this.#open();
    const start = this.#key(prefix);
    const res = await this.#run(() => this.client.kv.range({ key: start, range_end: prefixEnd(start) }));
    return { entries: res.kvs.map((kv) => this.#entry(kv)), revision: Number(res.header.revision) };
  }

  watch(prefix: string, options: KvWatchOptions = {}): AsyncIterable<KvChange> {
    checkRevision('fromRevision', options.fromRevision);
    const start =
      options.fromRevision !== undefined
        ? Promise.resolve(options.fromRevision)
        : (async () => {
            this.#open();
            const res = await this.#run(() =>
              this.client.kv.range({ key: this.ns, limit: 1, keys_only: true }),
            );
            return Number(res.header.revision);
          })();
    start.catch(() => {});
    return { [Symbol.asyncIterator]: () => this.#iterate(prefix, start, options.signal) };
  }

  async *#iterate(prefix: string, start: Promise<number>, signal?: AbortSignal): AsyncGenerator<KvChange> {
    const after = await start;
    this.#open();
    // Events arrive as callbacks; buffer them and hand them out in order. etcd3 re-creates the
    // watch from the last revision it saw after a reconnect, so a short outage loses nothing.
    const queue: KvChange[] = [];
    let failure: unknown;
    let ended = false;
    let wake: (() => void) | undefined;
    const poke = () => {
      wake?.();
      wake = undefined;
    };
    // watcher() (not create()): listeners are attached before etcd can answer, so nothing is missed.
    const watcher = this.client
      .watch()
      .prefix(this.#key(prefix))
      .startRevision(String(after + 1))
      .watcher();
    this.#watchers.add(watcher);
    watcher.on('data', (res) => {
      for (const ev of res.events) {
        const key = ev.kv.key.toString().slice(this.ns.toString().length);
        const revision = Number(ev.kv.mod_revision);
        queue.push(
          ev.type === 'Put'
            ? { type: 'put', key, value: ev.kv.value.toString(), revision }
            : { type: 'delete', key, revision },
        );
      }
      poke();
    });
    watcher.on('error', (err: Error) => {
      // etcd cancels a watch whose start revision was compacted; etcd3 passes on an empty reason.
      failure = /compact|^Watcher canceled:\s*$/i.test(err.message)
        ? watchGap(after, undefined, 'etcd compacted its history past it')
        : etcdError(this.url, err);
      poke();
    });
    watcher.on('end', () => {
      ended = true;
      poke();
    });
    const onAbort = () => poke();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      while (true) {
        if (signal?.aborted || this.closed) return;
        const next = queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (failure) throw failure;
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#watchers.delete(watcher);
      // A watch etcd already cancelled (compaction) never answers a cancel: do not wait for it.
      if (!failure && !ended) await cancelSoon(watcher);
    }
  }

  protected toError(err: unknown): unknown {
    return etcdError(this.url, err);
  }

  protected override async beforeClose(): Promise<void> {
    await Promise.all([...this.#watchers].map(cancelSoon));
  }

  #key(key: string): Buffer {
    return Buffer.concat([this.ns, Buffer.from(key)]);
  }

  #entry(kv: IKeyValue): KvEntry {
    return {
      key: kv.key.subarray(this.ns.length).toString(),
      value: kv.value.toString(),
      revision: Number(kv.mod_revision),
      createRevision: Number(kv.create_revision),
      version: Number(kv.version),
    };
  }

  #written(key: string, value: string, revision: number, prev: IKeyValue | undefined | null): KvEntry {
    return {
      key,
      value,
      revision,
      createRevision: prev ? Number(prev.create_revision) : revision,
      version: prev ? Number(prev.version) + 1 : 1,
    };
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

/** Cancels a watcher, waiting at most a second for etcd to confirm. */
function cancelSoon(w: Watcher): Promise<void> {
  return Promise.race([w.cancel().catch(() => {}), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
}
