import { Agent, fetch } from 'undici';
import { messageOf, TrellisError, type TrellisErrorCode } from '../core/errors.js';
import type {
  ConfigApi,
  ConfigChange,
  SchemaBinding,
  SchemaOptions,
  SetOptions,
  WatchOptions,
  WriteOptions,
} from './api.js';
import { type ConfigDocument, checkConfigKey, checkConfigPrefix, type HistoryEntry } from './document.js';
import { parseSse } from './sse.js';

export interface ConfigHttpClientOptions {
  /** The `trellis config serve` URL, like `http://127.0.0.1:7070`. */
  url: string;
  /** A read token (reads) or the write token (both). */
  token?: string;
  /** Per-request timeout for everything but watch streams (default 10 s). */
  timeoutMs?: number;
  /**
   * A watch stream silent for this long is treated as broken (default 45 s: three of the
   * server's 15 s heartbeats), so a half-open connection after a network partition is noticed.
   */
  watchIdleMs?: number;
}

/** ConfigApi over the HTTP API of `trellis config serve` (what the CLI and clients use with a server URL). */
export class ConfigHttpClient implements ConfigApi {
  readonly #base: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #watchAgent: Agent;

  constructor(options: ConfigHttpClientOptions) {
    this.#base = options.url.replace(/\/+$/, '');
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#watchAgent = new Agent({ bodyTimeout: options.watchIdleMs ?? 45_000 });
  }

  async get(key: string, label?: string): Promise<ConfigDocument | undefined> {
    const r = await this.#call('GET', keyPath('/v1/config/', key), { label }, { allow404: true });
    return r === undefined ? undefined : asDocument(r, this.#base);
  }

  async set(key: string, content: string, options: SetOptions = {}): Promise<ConfigDocument> {
    return asDocument(
      await this.#call(
        'PUT',
        keyPath('/v1/config/', key),
        { label: options.label, format: options.format },
        {
          body: content,
          headers: writeHeaders(options),
        },
      ),
      this.#base,
    );
  }

  async delete(key: string, options: WriteOptions = {}): Promise<boolean> {
    const r = await this.#call(
      'DELETE',
      keyPath('/v1/config/', key),
      { label: options.label },
      {
        headers: writeHeaders(options),
        allow404: true,
      },
    );
    return r !== undefined;
  }

  async list(prefix = '', label?: string): Promise<{ documents: ConfigDocument[]; revision: number }> {
    return (await this.#call('GET', '/v1/config', { prefix, label })) as {
      documents: ConfigDocument[];
      revision: number;
    };
  }

  async history(key: string, label?: string): Promise<HistoryEntry[]> {
    return ((await this.#call('GET', keyPath('/v1/history/', key), { label })) as { entries: HistoryEntry[] })
      .entries;
  }

  async rollback(key: string, revision: number, options: WriteOptions = {}): Promise<ConfigDocument> {
    return asDocument(
      await this.#call(
        'POST',
        keyPath('/v1/rollback/', key),
        { label: options.label, revision: String(revision) },
        {
          headers: writeHeaders(options),
        },
      ),
      this.#base,
    );
  }

  async setSchema(prefix: string, schema: unknown, options: SchemaOptions = {}): Promise<SchemaBinding> {
    return (await this.#call(
      'PUT',
      prefixPath('/v1/schemas/', prefix),
      { validator: options.validator },
      {
        ...(schema === undefined ? {} : { body: JSON.stringify(schema) }),
        headers: writeHeaders(options),
      },
    )) as SchemaBinding;
  }

  async listSchemas(): Promise<SchemaBinding[]> {
    return ((await this.#call('GET', '/v1/schemas', {})) as { schemas: SchemaBinding[] }).schemas;
  }

  async deleteSchema(prefix: string): Promise<boolean> {
    return (
      (await this.#call('DELETE', prefixPath('/v1/schemas/', prefix), {}, { allow404: true })) !== undefined
    );
  }

  async *watch(prefix: string, options: WatchOptions = {}): AsyncIterable<ConfigChange> {
    const url = this.#url('/v1/watch', { prefix, label: options.label });
    const headers: Record<string, string> = { accept: 'text/event-stream', ...this.#auth() };
    if (options.fromRevision !== undefined) headers['last-event-id'] = String(options.fromRevision);
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(url, { headers, signal: options.signal, dispatcher: this.#watchAgent });
    } catch (err) {
      if (options.signal?.aborted) return;
      throw this.#unreachable(err);
    }
    if (!res.ok) throw await problemError(res);
    try {
      for await (const e of parseSse(res.body as AsyncIterable<Uint8Array>)) {
        if (e.event === 'put' || e.event === 'delete') {
          yield JSON.parse(e.data) as ConfigChange;
        } else if (e.event === 'gap' || e.event === 'error') {
          const p = JSON.parse(e.data) as { code: TrellisErrorCode; detail: string };
          throw new TrellisError(p.code, p.detail);
        }
      }
    } catch (err) {
      if (options.signal?.aborted) return;
      if (err instanceof TrellisError) throw err;
      throw this.#unreachable(err);
    }
    if (options.signal?.aborted) return;
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREACHABLE',
      `${this.#base}: the watch stream ended: the server stopped or restarted; watch again from the last revision`,
      { status: 503 },
    );
  }

  async close(): Promise<void> {
    // Destroy, not close: a watch stream still open must not hold the client up.
    await this.#watchAgent.destroy().catch(() => undefined);
  }

  #auth(): Record<string, string> {
    return this.#token ? { authorization: `Bearer ${this.#token}` } : {};
  }

  #url(path: string, query: Record<string, string | undefined>): string {
    const u = new URL(this.#base + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== '') u.searchParams.set(k, v);
    return u.toString();
  }

  async #call(
    method: string,
    path: string,
    query: Record<string, string | undefined>,
    extra: { body?: string; headers?: Record<string, string>; allow404?: boolean } = {},
  ): Promise<unknown> {
    let res: Awaited<ReturnType<typeof fetch>>;
    try {
      res = await fetch(this.#url(path, query), {
        method,
        headers: { ...this.#auth(), ...extra.headers },
        body: extra.body,
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (err) {
      throw this.#unreachable(err);
    }
    if (res.status === 404 && extra.allow404) {
      const p = (await res.json().catch(() => ({}))) as { code?: string };
      if (p.code === 'TRELLIS_E_CONFIG_NOT_FOUND') return undefined;
      throw new TrellisError(
        'TRELLIS_E_CONFIG_UNREACHABLE',
        `${this.#base} is not a trellis config server (404)`,
      );
    }
    if (!res.ok) throw await problemError(res);
    if (res.status === 204) return true;
    return res.json();
  }

  #unreachable(err: unknown): TrellisError {
    const cause = (err as { cause?: unknown }).cause ?? err;
    return new TrellisError(
      'TRELLIS_E_CONFIG_UNREACHABLE',
      `${this.#base}: ${messageOf(cause)}: is \`trellis config serve\` running there?`,
      { status: 503, cause: err },
    );
  }
}

/**
 * `base` + the key, checked and encoded segment by segment: a key is never a path the URL
 * parser may rewrite (`x/../../schemas/shop` would otherwise reach another endpoint).
 */
function keyPath(base: string, key: string): string {
  checkConfigKey(key);
  return base + key.split('/').map(encodeURIComponent).join('/');
}

function prefixPath(base: string, prefix: string): string {
  checkConfigPrefix(prefix);
  return base + prefix.split('/').map(encodeURIComponent).join('/');
}

/** A document from the server, or an error saying the answer was not one (never `undefined@undefined`). */
function asDocument(body: unknown, base: string): ConfigDocument {
  const d = body as Partial<ConfigDocument> | undefined;
  if (typeof d?.key !== 'string' || typeof d.label !== 'string' || typeof d.revision !== 'number') {
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREACHABLE',
      `${base} answered something that is not a configuration document: is it a trellis config server?`,
    );
  }
  return d as ConfigDocument;
}

function writeHeaders(options: WriteOptions & { author?: string }): Record<string, string> {
  const h: Record<string, string> = {};
  if ('expectedRevision' in options && options.expectedRevision !== undefined) {
    if (options.expectedRevision === 0) h['if-none-match'] = '*';
    else h['if-match'] = `"${options.expectedRevision}"`;
  }
  if (options.author) h['x-trellis-author'] = encodeURIComponent(options.author);
  if ('message' in options && options.message) h['x-trellis-message'] = encodeURIComponent(options.message);
  return h;
}

async function problemError(res: Awaited<ReturnType<typeof fetch>>): Promise<TrellisError> {
  const body = (await res.json().catch(() => undefined)) as
    | { code?: TrellisErrorCode; detail?: string; [k: string]: unknown }
    | undefined;
  if (body?.code?.startsWith('TRELLIS_E_')) {
    const { type: _t, title: _ti, status: _s, detail, code, requestId: _r, ...details } = body;
    return new TrellisError(code, detail ?? `HTTP ${res.status}`, { status: res.status, details });
  }
  return new TrellisError(
    'TRELLIS_E_CONFIG_UNREACHABLE',
    `unexpected HTTP ${res.status} from the config server`,
    {
      status: res.status,
    },
  );
}
