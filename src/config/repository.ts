import type { z } from 'zod';
import { isTrellisError, TrellisError } from '../core/errors.js';
import type { KeyValueStore, KvEntry } from '../stores/types.js';
import type {
  ConfigApi,
  ConfigChange,
  SchemaBinding,
  SchemaOptions,
  SetOptions,
  WatchOptions,
  WriteOptions,
} from './api.js';
import {
  type ConfigDocument,
  checkConfigKey,
  checkConfigPrefix,
  checkLabel,
  DEFAULT_LABEL,
  decodeEnvelope,
  detectFormat,
  type Envelope,
  encodeEnvelope,
  type HistoryEntry,
  parseContent,
  toDocument,
} from './document.js';
import {
  compileJsonSchema,
  type DocumentValidator,
  schemaViolation,
  type ValidationIssue,
  validateDocument,
} from './validation.js';

export interface ConfigRepositoryOptions {
  /** Prefix of every KV key the config store uses (default `trellis/config/`). */
  root?: string;
  /** Zod schemas registered in this process, by key prefix (checked like stored JSON Schemas). */
  schemas?: Record<string, z.ZodType>;
  /** Validators this process provides, by name, for prefixes bound with `setSchema(…, { validator })`. */
  validators?: Record<string, DocumentValidator>;
}

const REV_DIGITS = 16;

/**
 * The External Configuration Store on top of any KeyValueStore. Layout under `root`:
 * `doc/<label>/<key>` the current version (a deletion is a tombstone, so history keeps it),
 * `hist/<label>/<key>@<revision>` every superseded version, `schema/<prefix>` JSON Schemas.
 *
 * A write replaces the current version by compare-and-set, then copies the new version into the
 * history. If the process dies between the two, the next write of that key first puts the
 * version it replaces into the history (idempotent: same key, same content), and history() always
 * includes the current version, so the history never misses a version that was ever current.
 */
export class ConfigRepository implements ConfigApi {
  readonly #kv: KeyValueStore;
  readonly #root: string;
  readonly #zodSchemas: Record<string, z.ZodType>;
  readonly #validators: Record<string, DocumentValidator>;
  #compiled = new Map<string, { raw: string; schema: z.ZodType }>();

  constructor(kv: KeyValueStore, options: ConfigRepositoryOptions = {}) {
    this.#kv = kv;
    this.#root = options.root ?? 'trellis/config/';
    this.#zodSchemas = { ...options.schemas };
    this.#validators = { ...options.validators };
  }

  /** The store underneath. */
  get store(): KeyValueStore {
    return this.#kv;
  }

  /** Binds a zod schema to a key prefix in this process (in addition to stored JSON Schemas). */
  registerSchema(prefix: string, schema: z.ZodType): void {
    checkConfigPrefix(prefix);
    this.#zodSchemas[prefix] = schema;
  }

  async get(key: string, label = DEFAULT_LABEL): Promise<ConfigDocument | undefined> {
    checkConfigKey(key);
    checkLabel(label);
    const entry = await this.#kv.get(this.#docKey(label, key));
    return entry ? this.#current(key, label, entry) : undefined;
  }

  async set(key: string, content: string, options: SetOptions = {}): Promise<ConfigDocument> {
    const label = options.label ?? DEFAULT_LABEL;
    checkConfigKey(key);
    checkLabel(label);
    const format = options.format ?? detectFormat(content);
    const value = parseContent(content, format);
    await this.#validate(key, value, content);
    const envelope: Envelope = {
      format,
      content,
      author: options.author || 'anonymous',
      message: options.message ?? '',
      time: new Date().toISOString(),
    };
    const entry = await this.#replace(key, label, envelope, options.expectedRevision);
    return toDocument(key, label, entry.revision, envelope);
  }

  async delete(key: string, options: WriteOptions = {}): Promise<boolean> {
    const label = options.label ?? DEFAULT_LABEL;
    checkConfigKey(key);
    checkLabel(label);
    const current = await this.#kv.get(this.#docKey(label, key));
    if (!current || decodeEnvelope(current.value).deleted) {
      if (options.expectedRevision !== undefined && options.expectedRevision !== 0) {
        throw mismatch(key, label, options.expectedRevision, 0);
      }
      return false;
    }
    await this.#replace(
      key,
      label,
      {
        format: 'json',
        content: '',
        author: options.author || 'anonymous',
        message: options.message ?? '',
        time: new Date().toISOString(),
        deleted: true,
      },
      options.expectedRevision,
      current,
    );
    return true;
  }

  async list(prefix = '', label = DEFAULT_LABEL): Promise<{ documents: ConfigDocument[]; revision: number }> {
    checkConfigPrefix(prefix);
    checkLabel(label);
    const base = this.#docKey(label, '');
    const { entries, revision } = await this.#kv.list(base + prefix);
    const documents: ConfigDocument[] = [];
    for (const e of entries) {
      const doc = this.#current(e.key.slice(base.length), label, e);
      if (doc) documents.push(doc);
    }
    return { documents, revision };
  }

  async history(key: string, label = DEFAULT_LABEL): Promise<HistoryEntry[]> {
    checkConfigKey(key);
    checkLabel(label);
    const [past, current] = await Promise.all([
      this.#kv.list(this.#histPrefix(label, key)),
      this.#kv.get(this.#docKey(label, key)),
    ]);
    const byRevision = new Map<number, HistoryEntry>();
    for (const e of past.entries) {
      const revision = Number(e.key.slice(e.key.lastIndexOf('@') + 1));
      byRevision.set(revision, historyEntry(key, label, revision, decodeEnvelope(e.value)));
    }
    if (current)
      byRevision.set(
        current.revision,
        historyEntry(key, label, current.revision, decodeEnvelope(current.value)),
      );
    return [...byRevision.values()].sort((a, b) => b.revision - a.revision);
  }

  async rollback(key: string, revision: number, options: WriteOptions = {}): Promise<ConfigDocument> {
    const label = options.label ?? DEFAULT_LABEL;
    const target = (await this.history(key, label)).find((h) => h.revision === revision);
    if (!target || target.deleted || target.content === undefined) {
      throw new TrellisError(
        'TRELLIS_E_CONFIG_REVISION_NOT_FOUND',
        target
          ? `${key}@${label} revision ${revision} is a deletion: there is no content to roll back to; pick another revision from the history`
          : `${key}@${label} has no revision ${revision}: pick one from \`trellis config history ${key}${label === DEFAULT_LABEL ? '' : ` --label ${label}`}\``,
        { status: 404 },
      );
    }
    const note = `rollback to revision ${revision}`;
    return this.set(key, target.content, {
      ...options,
      label,
      format: target.format,
      message: options.message ? `${note}: ${options.message}` : note,
    });
  }

  async *watch(prefix: string, options: WatchOptions = {}): AsyncIterable<ConfigChange> {
    const label = options.label ?? DEFAULT_LABEL;
    checkConfigPrefix(prefix);
    checkLabel(label);
    const base = this.#docKey(label, '');
    for await (const c of this.#kv.watch(base + prefix, {
      fromRevision: options.fromRevision,
      signal: options.signal,
    })) {
      const key = c.key.slice(base.length);
      const envelope = c.type === 'put' && c.value !== undefined ? decodeEnvelope(c.value) : undefined;
      if (!envelope || envelope.deleted) {
        yield { type: 'delete', key, label, revision: c.revision };
      } else {
        yield {
          type: 'put',
          key,
          label,
          revision: c.revision,
          document: toDocument(key, label, c.revision, envelope),
        };
      }
    }
  }

  async setSchema(prefix: string, schema: unknown, options: SchemaOptions = {}): Promise<SchemaBinding> {
    checkConfigPrefix(prefix);
    if (options.validator !== undefined) this.#validator(options.validator, prefix);
    if (schema !== undefined || options.validator === undefined) compileJsonSchema(schema);
    const binding: SchemaBinding = {
      prefix,
      ...(schema === undefined ? {} : { schema }),
      ...(options.validator === undefined ? {} : { validator: options.validator }),
      author: options.author || 'anonymous',
      time: new Date().toISOString(),
    };
    await this.#kv.put(this.#root + 'schema/' + prefix, JSON.stringify(binding));
    return binding;
  }

  async listSchemas(): Promise<SchemaBinding[]> {
    const { entries } = await this.#kv.list(this.#root + 'schema/');
    return entries.map((e) => JSON.parse(e.value) as SchemaBinding);
  }

  async deleteSchema(prefix: string): Promise<boolean> {
    checkConfigPrefix(prefix);
    return this.#kv.delete(this.#root + 'schema/' + prefix);
  }

  async close(): Promise<void> {
    await this.#kv.close();
  }

  /** Refuses the document (nothing written) when the schema or validator for its key finds anything wrong. */
  async #validate(key: string, value: unknown, content: string): Promise<void> {
    const candidates: { prefix: string; schema?: () => z.ZodType; validator?: string }[] = [];
    for (const [prefix, schema] of Object.entries(this.#zodSchemas))
      candidates.push({ prefix, schema: () => schema });
    for (const b of await this.listSchemas()) {
      candidates.push({
        prefix: b.prefix,
        ...(b.schema === undefined ? {} : { schema: () => this.#compile(b) }),
        ...(b.validator === undefined ? {} : { validator: b.validator }),
      });
    }
    const match = candidates
      .filter((c) => key.startsWith(c.prefix))
      .sort((a, b) => b.prefix.length - a.prefix.length)[0];
    const issues: ValidationIssue[] = validateDocument(value, match?.schema?.());
    if (match?.validator !== undefined) {
      issues.push(...this.#validator(match.validator, match.prefix).validate(content, key));
    }
    const by = match?.validator === undefined ? 'schema' : `${match.validator} validator`;
    if (issues.length > 0) throw schemaViolation(key, match?.prefix, issues, by);
  }

  /** The named validator; one this process does not have refuses the write (fail closed). */
  #validator(name: string, prefix: string): DocumentValidator {
    const v = this.#validators[name];
    if (v) return v;
    const known = Object.keys(this.#validators);
    throw new TrellisError(
      'TRELLIS_E_CONFIG_VALIDATOR_UNKNOWN',
      `prefix "${prefix}" is bound to the validator "${name}", which this process does not provide (${known.length ? `it has ${known.join(', ')}` : 'it has none'}): write through \`trellis config\` or \`trellis config serve\`, or register it in ConfigRepositoryOptions.validators`,
      { status: 400 },
    );
  }

  #compile(binding: SchemaBinding): z.ZodType {
    const raw = JSON.stringify(binding.schema);
    const cached = this.#compiled.get(binding.prefix);
    if (cached?.raw === raw) return cached.schema;
    const schema = compileJsonSchema(binding.schema);
    this.#compiled.set(binding.prefix, { raw, schema });
    return schema;
  }

  async #replace(
    key: string,
    label: string,
    envelope: Envelope,
    expectedRevision: number | undefined,
    known?: KvEntry,
  ): Promise<KvEntry> {
    const docKey = this.#docKey(label, key);
    const current = known ?? (await this.#kv.get(docKey));
    const live = current && !decodeEnvelope(current.value).deleted ? current : undefined;
    if (expectedRevision !== undefined && expectedRevision !== (live?.revision ?? 0)) {
      throw mismatch(key, label, expectedRevision, live?.revision ?? 0);
    }
    if (current) {
      // Heal a crash between a write's two steps: the version being replaced must be in history.
      const previous = this.#histKey(label, key, current.revision);
      if (!(await this.#kv.get(previous))) await this.#kv.put(previous, current.value);
    }
    const encoded = encodeEnvelope(envelope);
    let entry: KvEntry;
    try {
      entry = await this.#kv.put(docKey, encoded, { expectedRevision: current?.revision ?? 0 });
    } catch (err) {
      if (isTrellisError(err, 'TRELLIS_E_KV_CONFLICT')) {
        throw mismatch(key, label, expectedRevision ?? current?.revision ?? 0, undefined, err);
      }
      throw err;
    }
    // The history copy comes after the document, so the document's change is the one watchers
    // are woken for (a write right before it could swallow their wake-up on some backends).
    await this.#kv.put(this.#histKey(label, key, entry.revision), encoded);
    return entry;
  }

  #current(key: string, label: string, entry: KvEntry): ConfigDocument | undefined {
    const envelope = decodeEnvelope(entry.value);
    return envelope.deleted ? undefined : toDocument(key, label, entry.revision, envelope);
  }

  #docKey(label: string, key: string): string {
    return `${this.#root}doc/${label}/${key}`;
  }

  #histPrefix(label: string, key: string): string {
    return `${this.#root}hist/${label}/${key}@`;
  }

  #histKey(label: string, key: string, revision: number): string {
    return this.#histPrefix(label, key) + String(revision).padStart(REV_DIGITS, '0');
  }
}

function historyEntry(key: string, label: string, revision: number, e: Envelope): HistoryEntry {
  return {
    key,
    label,
    revision,
    author: e.author,
    message: e.message,
    time: e.time,
    deleted: e.deleted === true,
    ...(e.deleted ? {} : { format: e.format, content: e.content }),
  };
}

function mismatch(
  key: string,
  label: string,
  expected: number,
  actual: number | undefined,
  cause?: unknown,
): TrellisError {
  const now =
    actual === undefined
      ? 'it changed meanwhile'
      : actual === 0
        ? 'it does not exist'
        : `it is at revision ${actual}`;
  return new TrellisError(
    'TRELLIS_E_CONFIG_REVISION_MISMATCH',
    `${key}@${label}: expected revision ${expected} but ${now}; nothing changed: read it again, reapply your change and retry`,
    {
      status: 412,
      cause,
      details: { expectedRevision: expected, ...(actual === undefined ? {} : { revision: actual }) },
    },
  );
}
