import type { ConfigDocument, DocumentFormat, HistoryEntry } from './document.js';

/** A change seen by a watch: a new version of a document, or its deletion. */
export interface ConfigChange {
  type: 'put' | 'delete';
  key: string;
  label: string;
  revision: number;
  /** The new version (absent for deletes). */
  document?: ConfigDocument;
}

export interface WriteOptions {
  label?: string;
  /** Write only if the document is still at this revision (0: only if it does not exist): If-Match. */
  expectedRevision?: number;
  /** Who made the change (kept in the history). */
  author?: string;
  /** Why (kept in the history). */
  message?: string;
}

export interface SetOptions extends WriteOptions {
  /** `json` or `yaml`; guessed from the content when absent. */
  format?: DocumentFormat;
}

export interface WatchOptions {
  label?: string;
  /** Deliver every change after this revision (resume). Absent: changes from now on. */
  fromRevision?: number;
  signal?: AbortSignal;
}

export interface SchemaOptions {
  author?: string;
  /** Name of a validator (like `gateway`) to bind, with or without a JSON Schema. */
  validator?: string;
}

export interface SchemaBinding {
  /** Key prefix the schema applies to (the longest matching prefix wins). */
  prefix: string;
  /** The JSON Schema (absent when only a validator is bound). */
  schema?: unknown;
  /**
   * A named validator the writing process provides (like `gateway`: the gateway's own checks,
   * with its file:line messages); writes are refused where it is unknown.
   */
  validator?: string;
  author: string;
  time: string;
}

/**
 * The configuration store's operations, the same whether they run against a store directly
 * (ConfigRepository) or through `trellis config serve` over HTTP (ConfigHttpClient).
 */
export interface ConfigApi {
  get(key: string, label?: string): Promise<ConfigDocument | undefined>;
  /** Validates and writes; throws TRELLIS_E_CONFIG_SCHEMA_VIOLATION / _REVISION_MISMATCH, changing nothing. */
  set(key: string, content: string, options?: SetOptions): Promise<ConfigDocument>;
  /** True when the document existed. */
  delete(key: string, options?: WriteOptions): Promise<boolean>;
  list(prefix?: string, label?: string): Promise<{ documents: ConfigDocument[]; revision: number }>;
  /** Every version of a key, newest first. */
  history(key: string, label?: string): Promise<HistoryEntry[]>;
  /** Writes the content of an earlier revision again as a new version. */
  rollback(key: string, revision: number, options?: WriteOptions): Promise<ConfigDocument>;
  /**
   * Changes under `prefix` in revision order, each once. Throws TRELLIS_E_KV_WATCH_GAP when it
   * cannot continue from `fromRevision`: list() again and watch from its revision.
   */
  watch(prefix: string, options?: WatchOptions): AsyncIterable<ConfigChange>;
  /** Binds a JSON Schema and/or (`options.validator`) a named validator to a key prefix. */
  setSchema(prefix: string, schema: unknown, options?: SchemaOptions): Promise<SchemaBinding>;
  listSchemas(): Promise<SchemaBinding[]>;
  deleteSchema(prefix: string): Promise<boolean>;
  close(): Promise<void>;
}
