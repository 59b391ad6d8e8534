import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { isTrellisError } from '../../core/errors.js';
import type { KeyValueStore } from '../../stores/types.js';
import { badRequest, readJson, sendJson, withDeadline } from './respond.js';

/**
 * The state API's bulk calls, Dapr-style: many keys in one HTTP round trip, which is what the
 * round trip costs next to a store call (tens of microseconds against a few for an embedded
 * SQLite). `POST /v1/state/bulk` reads many keys; `POST /v1/state/bulk-put` writes many. The
 * writes are handed to the store together, so its write batcher commits them as one batch, but
 * each keeps its own compare-and-set and its own outcome: a bulk put is not all-or-nothing
 * (KeyValueStore has no multi-key transaction), hence not called "transaction".
 */

/** Most keys or writes in one bulk call. */
export const MAX_BULK = 1000;

const KEY = z.string().min(1).max(1024);
const BulkGet = z.object({ keys: z.array(KEY).min(1).max(MAX_BULK) }).strict();
const BulkPut = z
  .object({
    items: z
      .array(
        z
          .object({
            key: KEY,
            value: z.unknown().refine((v) => v !== undefined, 'value is required'),
            /** The revision the key must have (0: it must not exist yet), like If-Match. */
            ifMatch: z.number().int().min(0).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(MAX_BULK),
  })
  .strict();

function parse<T>(schema: z.ZodType<T>, body: unknown, example: string): T {
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue?.path.length ? `${issue.path.join('.')}: ` : '';
  throw badRequest(`${where}${issue?.message ?? 'invalid body'}; send ${example} (at most ${MAX_BULK})`);
}

/**
 * `{ keys: [...] }` → `{ items: [{ key, value, revision }] }` in the order asked, `value` and
 * `revision` null for a missing key. Values are spliced in as stored: the state API only stores
 * JSON documents, so re-parsing each one would only cost time.
 */
export async function bulkGet(
  state: KeyValueStore,
  timeoutMs: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { keys } = parse(BulkGet, await readJson(req), '{ "keys": ["a", "b"] }');
  const entries = await withDeadline(
    () => Promise.all(keys.map((k) => state.get(k))),
    timeoutMs,
    'state bulk get',
  );
  const items = entries.map((e, i) =>
    e === undefined
      ? `{"key":${JSON.stringify(keys[i])},"value":null,"revision":null}`
      : `{"key":${JSON.stringify(e.key)},"value":${e.value},"revision":${e.revision}}`,
  );
  const text = `{"items":[${items.join(',')}]}`;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * `{ items: [{ key, value, ifMatch? }] }` → `{ items: [{ key, revision } | { key, status, code,
 * detail }] }`: 200 with one outcome per write (412 for a failed compare-and-set), 503 only when
 * the store as a whole fails or misses the deadline.
 */
export async function bulkPut(
  state: KeyValueStore,
  timeoutMs: number,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const { items } = parse(BulkPut, await readJson(req), '{ "items": [{ "key": "a", "value": {} }] }');
  const outcomes = await withDeadline(
    () =>
      Promise.all(
        items.map((it) =>
          state
            .put(
              it.key,
              JSON.stringify(it.value),
              it.ifMatch === undefined ? {} : { expectedRevision: it.ifMatch },
            )
            .then(
              (entry) => ({ key: it.key, revision: entry.revision }),
              (err: unknown) => perWrite(it.key, err),
            ),
        ),
      ),
    timeoutMs,
    'state bulk put',
  );
  return sendJson(res, 200, { items: outcomes });
}

/** A write's own failure (a conflict, a bad key) is its outcome; a store failure fails the call. */
function perWrite(key: string, err: unknown) {
  if (isTrellisError(err) && err.code === 'TRELLIS_E_KV_CONFLICT')
    return { key, status: 412, code: err.code, detail: err.message };
  if (
    isTrellisError(err) &&
    (err.code === 'TRELLIS_E_KV_KEY_INVALID' || err.code === 'TRELLIS_E_KV_VALUE_INVALID')
  )
    return { key, status: 400, code: err.code, detail: err.message };
  throw err;
}
