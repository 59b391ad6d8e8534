import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import jsonata from 'jsonata';
import { TrellisError } from '../core/errors.js';
import type { KeyValueStore } from '../stores/types.js';
import type { ProcessorConfig } from './config.js';
import type { Filter } from './engine.js';
import { enrich } from './enrich.js';
import { batch, dedupe, filter, flatMap, map, window } from './filters.js';
import type { Message } from './message.js';

type Fn = (value: unknown, message: Message<unknown>) => unknown;

/** A JSONata expression as a function of (value, message); `$message` is bound to the message. */
export function jsonataFn(source: string, where: string): Fn {
  let e: ReturnType<typeof jsonata>;
  try {
    e = jsonata(source);
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_OPTIONS_INVALID',
      `${where}: JSONata does not parse: ${(err as Error).message} (${JSON.stringify(source)})`,
      { cause: err },
    );
  }
  return (value, message) =>
    e.evaluate(value, { message: { key: message.key, id: message.id, headers: message.headers } });
}

/** Loads a module's export as a processor function (paths relative to the pipeline file). */
async function moduleFn(path: string, name: string, dir: string, where: string): Promise<Fn> {
  const file = isAbsolute(path) ? path : resolve(dir, path);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_MODULE_INVALID',
      `${where}: cannot load ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const fn = mod[name];
  if (typeof fn !== 'function') {
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_MODULE_INVALID',
      `${where}: ${file} has no function export "${name}" (exports: ${Object.keys(mod).join(', ') || 'none'})`,
    );
  }
  return fn as Fn;
}

function codeOf(
  c: { jsonata: string } | { module: string; export: string },
  dir: string,
  where: string,
): Promise<Fn> {
  return 'jsonata' in c
    ? Promise.resolve(jsonataFn(c.jsonata, where))
    : moduleFn(c.module, c.export, dir, where);
}

/** Builds the filters a stage's `processors:` list names. */
export async function buildProcessors(
  list: ProcessorConfig[],
  ctx: { dir: string; stage: string; state: () => Promise<KeyValueStore> },
): Promise<Filter<unknown, unknown>[]> {
  const out: Filter<unknown, unknown>[] = [];
  for (const [i, p] of list.entries()) {
    const where = `stage ${ctx.stage} processors[${i}]`;
    const base = (kind: string, n?: string) => n ?? `${ctx.stage}.${kind}${i}`;
    if ('map' in p) {
      const fn = await codeOf(p.map, ctx.dir, where);
      out.push(map(fn, { name: base('map', p.map.name), concurrency: p.map.concurrency ?? 1 }));
    } else if ('filter' in p) {
      const fn = await codeOf(p.filter, ctx.dir, where);
      out.push(
        filter(async (v, m) => Boolean(await fn(v, m)), {
          name: base('filter', p.filter.name),
          concurrency: p.filter.concurrency ?? 1,
        }),
      );
    } else if ('flatMap' in p) {
      const fn = await codeOf(p.flatMap, ctx.dir, where);
      out.push(
        flatMap(
          async (v, m) => {
            const r = await fn(v, m);
            return r === undefined ? [] : Array.isArray(r) ? r : [r];
          },
          { name: base('flatMap', p.flatMap.name), concurrency: p.flatMap.concurrency ?? 1 },
        ),
      );
    } else if ('batch' in p) {
      out.push(
        batch({
          size: p.batch.size,
          ...(p.batch.maxWait === undefined ? {} : { maxWaitMs: p.batch.maxWait }),
          name: base('batch', p.batch.name),
        }) as Filter<unknown, unknown>,
      );
    } else if ('window' in p) {
      out.push(
        window({
          durationMs: p.window.duration,
          perKey: p.window.perKey,
          name: base('window', p.window.name),
        }) as Filter<unknown, unknown>,
      );
    } else if ('dedupe' in p) {
      const by = p.dedupe.key ? jsonataFn(p.dedupe.key, where) : undefined;
      const store = await ctx.state();
      // dedupe() needs a synchronous key: JSONata evaluates asynchronously, so resolve it first.
      const inner = dedupe<{ k: string; v: unknown }>({
        store,
        by: (x) => x.k,
        prefix: p.dedupe.prefix ?? `pipeline/${ctx.stage}/dedupe/`,
        name: base('dedupe', p.dedupe.name),
      });
      const toPair = map(async (v: unknown, m) => ({ k: by ? String(await by(v, m)) : m.id, v }), {
        name: `${base('dedupe', p.dedupe.name)}.key`,
      });
      const back = map((x: { k: string; v: unknown }) => x.v, {
        name: `${base('dedupe', p.dedupe.name)}.value`,
      });
      out.push(
        toPair as Filter<unknown, unknown>,
        inner as Filter<unknown, unknown>,
        back as Filter<unknown, unknown>,
      );
    } else {
      const e = p.enrich;
      const as = e.as;
      out.push(
        enrich<unknown, unknown>({
          url: (v) =>
            e.url.replace(/\{([A-Za-z0-9_.]+)\}/g, (_m, f: string) => encodeURIComponent(String(pick(v, f)))),
          method: e.method,
          timeoutMs: e.timeout,
          httpAttempts: e.retries + 1,
          ...(e.headers ? { headers: e.headers } : {}),
          name: base('enrich', e.name),
          concurrency: e.concurrency ?? 8,
          merge: (v, body) =>
            as
              ? { ...(v as object), [as]: body }
              : typeof body === 'object' && body !== null
                ? { ...(v as object), ...(body as object) }
                : { ...(v as object), enriched: body },
        }),
      );
    }
  }
  return out;
}

/** `a.b` of a value, for URL templates. */
export function pick(v: unknown, path: string): unknown {
  let cur = v;
  for (const part of path.split('.')) cur = (cur as Record<string, unknown> | undefined)?.[part];
  return cur;
}
