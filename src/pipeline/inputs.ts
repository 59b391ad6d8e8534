import { createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { Cron } from 'croner';
import { TrellisError } from '../core/errors.js';
import type { Chunks } from './engine.js';
import { type Envelope, Tracker } from './message.js';
import { SOURCE, type Source } from './pipeline.js';

/**
 * Reads an NDJSON file, one message per line, id `<path>:<line>`; ends at the end of the file.
 * A line that is not JSON stops the run with the line number (nothing after it is sent).
 */
export function fileSource(path: string): Source<unknown> {
  return {
    [SOURCE]: true,
    name: `file:${path}`,
    async *open(signal) {
      const lines = createInterface({
        input: createReadStream(path, { encoding: 'utf8' }),
        crlfDelay: Number.POSITIVE_INFINITY,
      });
      let n = 0;
      let chunk: Envelope<unknown>[] = [];
      try {
        for await (const line of lines) {
          n++;
          if (line.trim() === '') continue;
          let value: unknown;
          try {
            value = JSON.parse(line);
          } catch (err) {
            throw new TrellisError(
              'TRELLIS_E_PIPELINE_MESSAGE_INVALID',
              `${path}:${n}: not a JSON line (${(err as Error).message}): fix it; the lines before it were sent`,
            );
          }
          chunk.push({ value, id: `${path}:${n}`, headers: {}, trackers: [new Tracker()] });
          if (chunk.length === 256) {
            yield chunk;
            chunk = [];
          }
          if (signal.aborted) return;
        }
        if (chunk.length > 0) yield chunk;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new TrellisError('TRELLIS_E_PIPELINE_MESSAGE_INVALID', `${path}: no such file`, {
            cause: err,
          });
        }
        throw err;
      } finally {
        lines.close();
      }
    },
  };
}

/** Options of httpSource(). */
export interface HttpSourceOptions {
  host: string;
  port: number;
  path: string;
  maxBody: number;
  /** Called with the bound address once listening. */
  onListening?: (a: AddressInfo) => void;
}

/**
 * An HTTP endpoint: POST a JSON value, a JSON array (one message each) or NDJSON to `path`.
 * The answer is 202 only once every message of the request is durably on the next pipe (or
 * written by the sink), so a client that got 202 lost nothing; an `Idempotency-Key` header
 * becomes the message id (`<key>/<n>` for several).
 */
export function httpSource(o: HttpSourceOptions): Source<unknown> {
  return {
    [SOURCE]: true,
    name: `http:${o.port}${o.path}`,
    open(signal): Chunks<unknown> {
      const ready: Envelope<unknown>[][] = [];
      let wake: (() => void) | undefined;
      const problem = (
        res: import('node:http').ServerResponse,
        status: number,
        code: string,
        detail: string,
      ) => {
        res.writeHead(status, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ type: 'about:blank', status, code, detail }));
      };
      let seq = 0;
      const server = createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0];
        if (path !== o.path)
          return problem(res, 404, 'TRELLIS_E_PIPELINE_INPUT_REJECTED', `POST to ${o.path}`);
        if (req.method !== 'POST') return problem(res, 405, 'TRELLIS_E_PIPELINE_INPUT_REJECTED', 'use POST');
        const parts: Buffer[] = [];
        let size = 0;
        req.on('data', (c: Buffer) => {
          size += c.length;
          if (size > o.maxBody) {
            problem(res, 413, 'TRELLIS_E_PIPELINE_INPUT_REJECTED', `the body is over ${o.maxBody} bytes`);
            req.destroy();
            return;
          }
          parts.push(c);
        });
        req.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          let values: unknown[];
          try {
            const type = String(req.headers['content-type'] ?? '');
            if (type.includes('ndjson'))
              values = text
                .split('\n')
                .filter((l) => l.trim())
                .map((l) => JSON.parse(l));
            else {
              const v = JSON.parse(text) as unknown;
              values = Array.isArray(v) ? v : [v];
            }
          } catch (err) {
            return problem(
              res,
              400,
              'TRELLIS_E_PIPELINE_INPUT_REJECTED',
              `not JSON: ${(err as Error).message}`,
            );
          }
          const idem = req.headers['idempotency-key'];
          const base =
            typeof idem === 'string' && idem
              ? idem
              : `http-${Date.now().toString(36)}-${(seq++).toString(36)}`;
          let left = values.length;
          let failed = false;
          if (left === 0) {
            res.writeHead(202, { 'content-type': 'application/json' });
            return res.end(JSON.stringify({ accepted: 0 }));
          }
          const chunk = values.map((value, i) => ({
            value,
            id: values.length === 1 ? base : `${base}/${i}`,
            headers: {},
            trackers: [
              new Tracker(
                () => {
                  if (--left === 0 && !failed) {
                    res.writeHead(202, { 'content-type': 'application/json' });
                    res.end(JSON.stringify({ accepted: values.length }));
                  }
                },
                (err) => {
                  if (failed) return;
                  failed = true;
                  problem(
                    res,
                    503,
                    'TRELLIS_E_PIPELINE_INPUT_REJECTED',
                    `not accepted: ${(err as Error)?.message}: retry`,
                  );
                },
              ),
            ],
          }));
          ready.push(chunk);
          wake?.();
        });
      });
      return (async function* () {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(o.port, o.host, () => {
            o.onListening?.(server.address() as AddressInfo);
            resolve();
          });
        });
        try {
          while (!signal.aborted) {
            const next = ready.shift();
            if (next) {
              yield next;
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
              signal.addEventListener('abort', () => resolve(), { once: true });
            });
            wake = undefined;
          }
        } finally {
          server.closeAllConnections();
          await new Promise<void>((r) => server.close(() => r()));
        }
      })();
    },
  };
}

/** Emits one message on every tick of a cron expression (croner, seconds allowed): `{ firedAt, ...message }`. */
export function scheduleSource(o: { cron: string; message?: unknown; timezone?: string }): Source<unknown> {
  return {
    [SOURCE]: true,
    name: `schedule:${o.cron}`,
    open(signal): Chunks<unknown> {
      const ticks: Date[] = [];
      let wake: (() => void) | undefined;
      let job: Cron;
      try {
        job = new Cron(o.cron, { ...(o.timezone ? { timezone: o.timezone } : {}), protect: true }, () => {
          ticks.push(new Date());
          wake?.();
        });
      } catch (err) {
        throw new TrellisError(
          'TRELLIS_E_PIPELINE_OPTIONS_INVALID',
          `schedule ${JSON.stringify(o.cron)}: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      }
      return (async function* () {
        try {
          while (!signal.aborted) {
            const t = ticks.shift();
            if (t) {
              const extra =
                typeof o.message === 'object' && o.message !== null ? o.message : { message: o.message };
              yield [
                {
                  value: { firedAt: t.toISOString(), ...extra },
                  id: `schedule:${t.getTime()}`,
                  headers: {},
                  trackers: [new Tracker()],
                },
              ];
              continue;
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
              signal.addEventListener('abort', () => resolve(), { once: true });
            });
            wake = undefined;
          }
        } finally {
          job.stop();
        }
      })();
    },
  };
}
