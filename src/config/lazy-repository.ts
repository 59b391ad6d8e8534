import { openKeyValueStore } from '../stores/kv/index.js';
import type {
  ConfigApi,
  ConfigChange,
  SchemaBinding,
  SchemaOptions,
  SetOptions,
  WatchOptions,
  WriteOptions,
} from './api.js';
import type { ConfigDocument, HistoryEntry } from './document.js';
import { ConfigRepository, type ConfigRepositoryOptions } from './repository.js';

/**
 * A ConfigRepository opened on first use and opened again after a failed open, so a client
 * pointed at a store URL starts (on its last-known-good copy) while the store is down, and
 * connects when it comes back; the store drivers themselves connect eagerly on open.
 */
export class LazyRepository implements ConfigApi {
  readonly #url: string;
  readonly #options: ConfigRepositoryOptions;
  #opening: Promise<ConfigRepository> | undefined;
  #closed = false;

  constructor(url: string, options: ConfigRepositoryOptions = {}) {
    this.#url = url;
    this.#options = options;
  }

  #repo(): Promise<ConfigRepository> {
    this.#opening ??= openKeyValueStore(this.#url).then(
      (kv) => new ConfigRepository(kv, this.#options),
      (err: unknown) => {
        this.#opening = undefined;
        throw err;
      },
    );
    return this.#opening;
  }

  async get(key: string, label?: string): Promise<ConfigDocument | undefined> {
    return (await this.#repo()).get(key, label);
  }
  async set(key: string, content: string, options?: SetOptions): Promise<ConfigDocument> {
    return (await this.#repo()).set(key, content, options);
  }
  async delete(key: string, options?: WriteOptions): Promise<boolean> {
    return (await this.#repo()).delete(key, options);
  }
  async list(prefix?: string, label?: string): Promise<{ documents: ConfigDocument[]; revision: number }> {
    return (await this.#repo()).list(prefix, label);
  }
  async history(key: string, label?: string): Promise<HistoryEntry[]> {
    return (await this.#repo()).history(key, label);
  }
  async rollback(key: string, revision: number, options?: WriteOptions): Promise<ConfigDocument> {
    return (await this.#repo()).rollback(key, revision, options);
  }
  async *watch(prefix: string, options?: WatchOptions): AsyncIterable<ConfigChange> {
    yield* (await this.#repo()).watch(prefix, options);
  }
  async setSchema(prefix: string, schema: unknown, options?: SchemaOptions): Promise<SchemaBinding> {
    return (await this.#repo()).setSchema(prefix, schema, options);
  }
  async listSchemas(): Promise<SchemaBinding[]> {
    return (await this.#repo()).listSchemas();
  }
  async deleteSchema(prefix: string): Promise<boolean> {
    return (await this.#repo()).deleteSchema(prefix);
  }
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const opening = this.#opening;
    if (opening) await (await opening.catch(() => undefined))?.close();
  }
}
