import type { IncomingMessage, ServerResponse } from 'node:http';
import { isTrellisError, messageOf, TrellisError } from '../../core/errors.js';
import { sendProblem } from '../../http/problem.js';

/** Largest request body the platform API reads (a state value, a message). */
export const MAX_BODY = 1024 * 1024;

/** Answers with a JSON body. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/**
 * Reads the whole body (at most MAX_BODY bytes) as text. With 'data'/'end' listeners rather than
 * `for await`: the async iterator costs a promise per chunk on the hot path of every PUT.
 */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.removeAllListeners('data');
        req.resume();
        reject(
          new TrellisError('TRELLIS_E_SIDECAR_API_BAD_REQUEST', `the body is larger than ${MAX_BODY} bytes`, {
            details: { status: 413 },
          }),
        );
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () =>
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8')),
    );
    req.once('error', reject);
    req.once('close', () => {
      if (!req.complete) reject(new Error('the client closed the request before its body ended'));
    });
  });
}

/** Reads a JSON body; an empty body is `{}`. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const text = await readBody(req);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw badRequest('the body is not valid JSON');
  }
}

export function badRequest(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_SIDECAR_API_BAD_REQUEST', message, { details: { status: 400 } });
}

/**
 * Runs a store operation with a deadline, so an unreachable store answers 503 instead of
 * holding the app's request open. (The operation itself goes on; its result is dropped.)
 */
export function withDeadline<T>(op: () => Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new TrellisError(
            'TRELLIS_E_STORE_UNAVAILABLE',
            `${what}: the store did not answer within ${ms} ms`,
          ),
        ),
      ms,
    );
    op().then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

const STATUS_OF: Record<string, number> = {
  TRELLIS_E_KV_CONFLICT: 412,
  TRELLIS_E_KV_KEY_INVALID: 400,
  TRELLIS_E_KV_VALUE_INVALID: 400,
  TRELLIS_E_LEASE_LOST: 409,
  TRELLIS_E_QUEUE_PAYLOAD_TOO_LARGE: 413,
  TRELLIS_E_QUEUE_NAME_INVALID: 400,
  TRELLIS_E_LEASE_INVALID: 400,
};

/** A thrown error as a problem: client mistakes 4xx, a store that is down or closed 503 + Retry-After. */
export function sendError(res: ServerResponse, err: unknown): void {
  if (isTrellisError(err)) {
    const explicit = (err.details as { status?: number } | undefined)?.status;
    const status =
      explicit ?? STATUS_OF[err.code] ?? (err.code === 'TRELLIS_E_SIDECAR_API_BAD_REQUEST' ? 400 : 503);
    sendProblem(res, {
      status,
      code: err.code,
      detail: err.message,
      ...(status === 503 ? { headers: { 'retry-after': '1' } } : {}),
    });
    return;
  }
  sendProblem(res, {
    status: 503,
    code: 'TRELLIS_E_STORE_UNAVAILABLE',
    detail: `the store failed: ${messageOf(err)}`,
    headers: { 'retry-after': '1' },
  });
}
