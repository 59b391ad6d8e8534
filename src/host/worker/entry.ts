import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { isMainThread, type MessagePort, parentPort, workerData } from 'node:worker_threads';
import { Batcher, type FromChannel, type ToChannel, tight, WINDOW } from '../channel-protocol.js';
import type { FromWorker, ToWorker, WorkerStart, WorkerStats } from '../protocol.js';
import { toWire } from '../protocol.js';
import { ABANDON, HostedRequest } from './hosted-request.js';

/**
 * The code every workload worker runs, in a worker thread or a child process: loads the
 * workload's module, runs it as its kind says, answers the host's heartbeats with its figures
 * (a loop that cannot answer is blocked: the host's watchdog ends it), and drains on request.
 */

type Send = (m: FromWorker) => void;

const send: Send = isMainThread ? (m) => process.send?.(m) : (m) => parentPort?.postMessage(m);

const counters = { handled: 0, errors: 0, inFlight: 0 };
/**
 * The loop-delay sampling period, ms. Each sample is a timer wake-up of this thread: at 10 ms, 20
 * idle workers woke 2,000 times a second between them, each a thread switch on the core a busy
 * workload shares with them (~25 µs of CPU per request of the loaded one in
 * `npm run bench -- host`). A block longer than the period still delays the next sample; the
 * heartbeat catches a stuck loop either way.
 */
const DELAY_RESOLUTION_MS = 100;
const delay = monitorEventLoopDelay({ resolution: DELAY_RESOLUTION_MS });
delay.enable();
const eluStart = performance.eventLoopUtilization();

function stats(): WorkerStats {
  const mem = process.memoryUsage();
  const elu = performance.eventLoopUtilization(eluStart);
  const cpu = process.cpuUsage();
  const s: WorkerStats = {
    // Node 20 has no per-thread CPU clock: a thread's busy event-loop time stands in for it.
    cpuMs: isMainThread ? (cpu.user + cpu.system) / 1000 : elu.active,
    elu: elu.utilization,
    // A sample is the whole time between two timer runs: the period itself is no delay.
    loopDelay: Number.isNaN(delay.mean) ? 0 : Math.max(0, delay.mean / 1e6 - DELAY_RESOLUTION_MS),
    heapUsed: mem.heapUsed,
    rss: mem.rss,
    ...counters,
    ...(leading === undefined ? {} : { leading: leading() }),
  };
  delay.reset();
  return s;
}

/** Calls into task pools, answered by the host. */
const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
let nextCall = 1;

/** Runs `input` on the task pool `pool` of this host; rejects with the task's (typed) error. */
function runTask(pool: string, input: unknown): Promise<unknown> {
  const id = nextCall++;
  return new Promise((resolve, reject) => {
    calls.set(id, { resolve, reject });
    send({ t: 'call', id, pool, input });
  });
}

/** What a workload's module receives beside its input. */
export interface WorkloadEnv {
  name: string;
  config: Record<string, unknown>;
  runTask: typeof runTask;
}

// Node handlers (req, res) get no env argument: they find it here.
(globalThis as Record<symbol, unknown>)[Symbol.for('trellis.host')] = { runTask };

let server: Server | undefined;
// A leader-elected schedule says in each heartbeat whether it leads (the host's status shows it).
let leading: (() => boolean) | undefined;
let stopWork: (() => Promise<void>) | undefined;
// The module's own `stop(env)`, run last in a drain, once no work reaches it any more.
let stopModule: (() => Promise<unknown>) | undefined;
let taskFn: ((input: unknown, env: WorkloadEnv) => unknown) | undefined;

type FetchHandler = (request: Request, env: WorkloadEnv) => Response | Promise<Response>;
type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The module's handler: `fetch` (or a default object with `fetch`) is fetch-style; a default function of 2+ parameters is a node:http handler. */
function pickHttp(mod: Record<string, unknown>): { fetch?: FetchHandler; node?: NodeHandler } {
  const d = mod.default as unknown;
  if (typeof mod.fetch === 'function') return { fetch: mod.fetch as FetchHandler };
  if (d && typeof d === 'object' && typeof (d as { fetch?: unknown }).fetch === 'function') {
    const o = d as { fetch: FetchHandler };
    return { fetch: (r, e) => o.fetch(r, e) };
  }
  if (typeof d === 'function')
    return d.length >= 2 ? { node: d as NodeHandler } : { fetch: d as FetchHandler };
  if (typeof mod.handler === 'function') return { node: mod.handler as NodeHandler };
  throw new Error(
    'an http module exports fetch(request), a default { fetch }, or a default (req, res) handler',
  );
}

/** The answer's headers as a flat [name, value, …] list (each Set-Cookie on its own). */
function responseHeaders(response: Response): string[] {
  const out: string[] = [];
  let cookies = false;
  response.headers.forEach((v, k) => {
    if (k === 'set-cookie') cookies = true;
    else out.push(k, v);
  });
  if (cookies) for (const c of response.headers.getSetCookie()) out.push('set-cookie', c);
  return out;
}

const SOON = Symbol('soon');
/**
 * Settles after a few microtask turns: a read of a stream that has already closed settles
 * sooner, one that waits for its source does not (a timer here would cost one per request).
 */
const soon = () =>
  Promise.resolve()
    .then(() => undefined)
    .then(() => undefined)
    .then(() => undefined)
    .then((): typeof SOON => SOON);

/**
 * Reads a body's first chunk and, when the stream ends at once (a JSON or text answer: the
 * usual case), the whole of it: `whole` is then the entire body, sent in one piece with its
 * length. A body that is still streaming is not waited for (an event stream's first event goes
 * out now): `next` is the read in progress.
 */
async function firstChunk(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<{
  first?: Uint8Array;
  whole: boolean;
  next?: ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>;
}> {
  const r = await reader.read();
  if (r.done) return { whole: true };
  const next = reader.read();
  const quick = await Promise.race([next, soon()]);
  if (quick !== SOON && quick.done) return { first: r.value, whole: true };
  return { first: r.value, whole: false, next };
}

async function answer(fetch: FetchHandler, env: WorkloadEnv, req: IncomingMessage, res: ServerResponse) {
  const url = `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`;
  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2)
    headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  const request = new HostedRequest(url, {
    method: req.method ?? 'GET',
    headers,
    ...(hasBody ? { body: Readable.toWeb(req) as ReadableStream, duplex: 'half' } : {}),
  } as RequestInit);
  // The client (the host's forwarding exchange) went away before the answer was complete.
  res.once('close', () => {
    if (!res.writableFinished) request[ABANDON]();
  });
  const response = await fetch(request, env);
  const out = responseHeaders(response);
  if (!response.body || req.method === 'HEAD') {
    res.writeHead(response.status, response.statusText, out);
    res.end();
    return;
  }
  const reader = response.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  const { first, whole, next } = await firstChunk(reader);
  if (whole) {
    if (first && response.headers.get('content-length') === null)
      out.push('content-length', String(first.byteLength));
    res.writeHead(response.status, response.statusText, out);
    res.end(first);
    return;
  }
  res.writeHead(response.status, response.statusText, out);
  const closed = new Promise<void>((resolve) => res.once('close', resolve));
  let ok = res.write(first!);
  let pending = next!;
  for (;;) {
    if (!ok) await Promise.race([new Promise((resolve) => res.once('drain', resolve)), closed]);
    if (res.destroyed) {
      await reader.cancel().catch(() => {});
      return;
    }
    const r = await pending;
    if (r.done) break;
    ok = res.write(r.value);
    pending = reader.read();
  }
  res.end();
}

/**
 * Serves the host's request channel (see src/host/channel.ts): each request arrives as a
 * message, its body as chunks; the answer goes back as a head, chunks and an end, within the
 * byte window each way.
 */
function serveChannel(port: MessagePort, fetch: FetchHandler, env: WorkloadEnv): () => void {
  interface Req {
    aborted: boolean;
    queue: Uint8Array[];
    ended: boolean;
    wake: (() => void) | undefined;
    /** Response bytes sent and not yet acknowledged. */
    out: number;
    acked: (() => void) | undefined;
    reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    /** The workload's Request, once made: the host giving up aborts its signal. */
    request: HostedRequest | undefined;
  }
  const reqs = new Map<number, Req>();
  let closed = false;
  const out = new Batcher<FromChannel>(port);
  const post = (m: FromChannel) => out.post(m);

  const run = async (id: number, q: Extract<ToChannel, { t: 'q' }>, r: Req) => {
    counters.inFlight++;
    idleCheck?.(); // a request during a drain postpones its end
    let failed = false;
    let headSent = false;
    try {
      const headers = new Headers();
      let host = 'localhost';
      for (let i = 0; i < q.h.length; i += 2) {
        const name = q.h[i]!;
        if (name.length === 4 && name.toLowerCase() === 'host') host = q.h[i + 1]!;
        headers.append(name, q.h[i + 1]!);
      }
      let body: ReadableStream<Uint8Array> | undefined;
      if (q.b) {
        body = new ReadableStream<Uint8Array>(
          {
            pull: async (c) => {
              while (r.queue.length === 0 && !r.ended && !r.aborted)
                await new Promise<void>((resolve) => {
                  r.wake = resolve;
                });
              if (r.aborted) return c.error(new Error('the request was aborted'));
              const chunk = r.queue.shift();
              if (chunk === undefined) return c.close();
              c.enqueue(chunk);
              post({ t: 'k', id, n: chunk.byteLength });
            },
          },
          { highWaterMark: 0 },
        );
      }
      const request = new HostedRequest(`http://${host}${q.p}`, {
        method: q.m,
        headers,
        ...(body && q.m !== 'GET' && q.m !== 'HEAD' ? { body, duplex: 'half' } : {}),
      } as RequestInit);
      r.request = request;
      if (r.aborted) request[ABANDON]();
      const response = await fetch(request, env);
      if (r.aborted) {
        await response.body?.cancel().catch(() => {});
        return;
      }
      const status = response.status;
      if (status >= 500) failed = true;
      const out = responseHeaders(response);
      if (!response.body || q.m === 'HEAD') {
        post({ t: 'h', id, s: status, st: response.statusText, h: out, e: true });
        headSent = true;
        return;
      }
      const reader = response.body.getReader() as ReadableStreamDefaultReader<Uint8Array>;
      r.reader = reader;
      const { first, whole, next } = await firstChunk(reader);
      if (r.aborted) return;
      if (whole) {
        if (first && response.headers.get('content-length') === null)
          out.push('content-length', String(first.byteLength));
        post({
          t: 'h',
          id,
          s: status,
          st: response.statusText,
          h: out,
          ...(first ? { c: tight(first) } : {}),
          e: true,
        });
        headSent = true;
        return;
      }
      post({ t: 'h', id, s: status, st: response.statusText, h: out, c: tight(first!) });
      headSent = true;
      r.out += first!.byteLength;
      let pending = next!;
      for (;;) {
        if (r.out > WINDOW)
          await new Promise<void>((resolve) => {
            r.acked = resolve;
          });
        if (r.aborted) {
          await reader.cancel().catch(() => {});
          return;
        }
        const x = await pending;
        if (x.done) break;
        if (r.aborted) return;
        post({ t: 'd', id, c: tight(x.value) });
        r.out += x.value.byteLength;
        pending = reader.read();
      }
      post({ t: 'e', id });
    } catch (err) {
      failed = true;
      if (r.aborted) return;
      if (!headSent) {
        const text = JSON.stringify({
          title: 'workload error',
          status: 500,
          detail: (err as Error)?.message,
        });
        post({
          t: 'h',
          id,
          s: 500,
          st: 'Internal Server Error',
          h: ['content-type', 'application/problem+json'],
          c: new TextEncoder().encode(text),
          e: true,
        });
      } else post({ t: 'x', id, code: 'UND_ERR_SOCKET', msg: (err as Error)?.message ?? 'workload error' });
    } finally {
      reqs.delete(id);
      counters.inFlight--;
      counters.handled++;
      if (failed || r.aborted) counters.errors++;
      idleCheck?.();
    }
  };

  const onMessage = (m: ToChannel) => {
    if (m.t === 'q') {
      if (closed) {
        // The listener has closed (the end of a drain): as a refused connection would be.
        post({ t: 'x', id: m.id, code: 'ECONNREFUSED', msg: 'the workload has stopped' });
        return;
      }
      const r: Req = {
        aborted: false,
        queue: [],
        ended: !m.b,
        wake: undefined,
        out: 0,
        acked: undefined,
        reader: undefined,
        request: undefined,
      };
      reqs.set(m.id, r);
      void run(m.id, m, r);
      return;
    }
    const r = reqs.get(m.id);
    if (r === undefined) return;
    switch (m.t) {
      case 'd':
        r.queue.push(m.c);
        r.wake?.();
        return;
      case 'e':
        r.ended = true;
        r.wake?.();
        return;
      case 'k':
        r.out -= m.n;
        if (r.out <= WINDOW) {
          const a = r.acked;
          r.acked = undefined;
          a?.();
        }
        return;
      case 'x': {
        r.aborted = true;
        r.request?.[ABANDON]();
        r.wake?.();
        const a = r.acked;
        r.acked = undefined;
        a?.();
        void r.reader?.cancel().catch(() => {});
        return;
      }
    }
  };
  port.on('message', (batch: ToChannel[]) => {
    for (const m of batch) onMessage(m);
  });
  return () => {
    closed = true;
  };
}

let closeChannel: (() => void) | undefined;

async function startHttp(
  mod: Record<string, unknown>,
  env: WorkloadEnv,
  channel: MessagePort | undefined,
): Promise<{ port: number; channel: boolean }> {
  const h = pickHttp(mod);
  // A fetch-style module is served over the host's channel; a node:http handler needs a real
  // request and response, so it keeps the loopback listener only (which also serves upgrades).
  if (channel && h.fetch) closeChannel = serveChannel(channel, h.fetch, env);
  else channel?.close();
  server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    counters.inFlight++;
    idleCheck?.(); // a request during a drain postpones its end
    let done = false;
    const finish = (failed: boolean) => {
      if (done) return;
      done = true;
      counters.inFlight--;
      counters.handled++;
      if (failed || res.statusCode >= 500) counters.errors++;
      idleCheck?.();
    };
    res.on('close', () => finish(!res.writableFinished));
    const fail = (err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ title: 'workload error', status: 500, detail: (err as Error)?.message }));
      } else res.destroy();
      finish(true);
    };
    try {
      if (h.node) h.node(req, res);
      else answer(h.fetch!, env, req, res).catch(fail);
    } catch (err) {
      fail(err);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server!.once('error', reject);
    server!.listen(0, '127.0.0.1', () => resolve());
  });
  return { port: (server.address() as { port: number }).port, channel: closeChannel !== undefined };
}

async function startConsumer(
  start: WorkerStart,
  mod: Record<string, unknown>,
  env: WorkloadEnv,
): Promise<void> {
  const fn = (mod.default ?? mod.handle) as
    | ((payload: string, d: unknown, env: WorkloadEnv) => unknown)
    | undefined;
  if (typeof fn !== 'function')
    throw new Error('a consumer module exports a default (payload, delivery, env) function');
  const c = start.consumer!;
  const { openMessageQueue } = await import('../../stores/queue/index.js');
  const queue = await openMessageQueue(c.queue);
  const consumer = await queue.consume(
    c.topic,
    c.group,
    async (d) => {
      counters.inFlight++;
      try {
        await fn((d as { payload: string }).payload, d, env);
      } catch (err) {
        counters.errors++;
        throw err;
      } finally {
        counters.inFlight--;
        counters.handled++;
        idleCheck?.();
      }
    },
    { concurrency: c.concurrency, ...(c.maxDeliver ? { maxDeliver: c.maxDeliver } : {}) },
  );
  stopWork = async () => {
    await consumer.stop();
    await queue.close();
  };
}

async function startSchedule(
  start: WorkerStart,
  mod: Record<string, unknown>,
  env: WorkloadEnv,
): Promise<void> {
  const fn = (mod.default ?? mod.run) as ((env: WorkloadEnv) => unknown) | undefined;
  if (typeof fn !== 'function') throw new Error('a schedule module exports a default (env) function');
  const { Cron } = await import('croner');
  const s = start.schedule!;
  let isLeader = () => true;
  let stopElector = async () => {};
  if (s.leader) {
    // Only the leader runs the job; the others stay candidates and take over when it goes.
    const { openLeaseStore } = await import('../../stores/lease/index.js');
    const { LeaderElector } = await import('../../leader/elector.js');
    const store = await openLeaseStore(s.leader.store);
    const elector = new LeaderElector({
      store,
      group: s.leader.group,
      // Lead until the term ends: the cron job checks isLeader at each run.
      onStartedLeading: (ctx) =>
        new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true })),
    });
    elector.start();
    isLeader = () => elector.isLeader;
    leading = isLeader;
    stopElector = async () => {
      await elector.stop();
      await store.close();
    };
  }
  // protect: a run still going when the next is due is skipped rather than overlapped.
  const job = new Cron(
    s.cron,
    { protect: true, ...(s.timezone ? { timezone: s.timezone } : {}) },
    async () => {
      if (!isLeader()) return;
      counters.inFlight++;
      try {
        await fn(env);
      } catch (err) {
        counters.errors++;
        send({ t: 'failed', error: toWire(err) });
      } finally {
        counters.inFlight--;
        counters.handled++;
        idleCheck?.();
      }
    },
  );
  stopWork = async () => {
    job.stop();
    await stopElector();
  };
}

let idleCheck: (() => void) | undefined;

async function drain(idleMs: number): Promise<void> {
  // The host has already switched traffic away; requests the previous routes still send (a
  // generation finishing its in-flight requests, a retry) keep being served. Once nothing has
  // been in flight for idleMs, the listener closes and the worker ends.
  await stopWork?.();
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    idleCheck = () => {
      if (timer) clearTimeout(timer);
      if (counters.inFlight === 0) timer = setTimeout(resolve, idleMs);
    };
    idleCheck();
  });
  closeChannel?.();
  await new Promise<void>((resolve) => {
    if (!server) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections();
  });
  await stopModule?.();
  send({ t: 'drained' });
}

async function onMessage(m: ToWorker, env: () => WorkloadEnv): Promise<void> {
  switch (m.t) {
    case 'ping':
      send({ t: 'pong', n: m.n, stats: stats() });
      return;
    case 'drain':
      await drain(m.idleMs);
      return;
    case 'task': {
      counters.inFlight++;
      try {
        const value = await taskFn!(m.input, env());
        send({ t: 'result', id: m.id, ok: true, value });
      } catch (err) {
        counters.errors++;
        send({ t: 'result', id: m.id, ok: false, error: toWire(err) });
      } finally {
        counters.inFlight--;
        counters.handled++;
      }
      return;
    }
    case 'callResult': {
      const c = calls.get(m.id);
      calls.delete(m.id);
      if (!c) return;
      if (m.ok) c.resolve(m.value);
      else c.reject(Object.assign(new Error(m.error?.message), { code: m.error?.code }));
      return;
    }
    case 'start':
      return;
  }
}

async function boot(start: WorkerStart): Promise<void> {
  const env: WorkloadEnv = { name: start.name, config: start.config, runTask };
  const listen = (fn: (m: ToWorker) => void) =>
    isMainThread ? process.on('message', fn) : parentPort!.on('message', fn);
  listen((m) => {
    onMessage(m, () => env).catch((err) => send({ t: 'failed', error: toWire(err) }));
  });
  try {
    const mod = (await import(`${start.moduleUrl}?v=${start.generation}`)) as Record<string, unknown>;
    // Optional lifecycle hooks of any kind of module: `start(env)` opens what the workload needs
    // (stores, background loops) before it counts as ready, so its first request or run finds
    // them; a throw fails this start like a crash. `stop(env)` closes them at the end of a drain.
    if (typeof mod.start === 'function') await (mod.start as (env: WorkloadEnv) => unknown)(env);
    if (typeof mod.stop === 'function') {
      const stop = mod.stop as (env: WorkloadEnv) => unknown;
      stopModule = async () => stop(env);
    }
    switch (start.kind) {
      case 'http':
        send({ t: 'ready', ...(await startHttp(mod, env, start.channel)) });
        return;
      case 'consumer':
        await startConsumer(start, mod, env);
        break;
      case 'schedule':
        await startSchedule(start, mod, env);
        break;
      case 'taskPool': {
        const fn = (mod.default ?? mod.run) as typeof taskFn;
        if (typeof fn !== 'function')
          throw new Error('a task module exports a default (input, env) function');
        taskFn = fn;
        break;
      }
    }
    send({ t: 'ready' });
  } catch (err) {
    send({ t: 'failed', error: toWire(err) });
    process.exitCode = 1;
    setImmediate(() => process.exit(1));
  }
}

if (isMainThread) {
  // A thread's uncaught error reaches the host as its 'error' event; a process says it here.
  process.on('uncaughtException', (err) => {
    process.exitCode = 1;
    // Exit once the message is on its way (process.send is asynchronous).
    const m: FromWorker = { t: 'failed', error: toWire(err), fatal: true };
    if (!process.send?.(m, () => process.exit(1))) process.exit(1);
  });
  process.once('message', (m: ToWorker) => {
    if (m.t === 'start') void boot(m.start);
  });
} else {
  void boot(workerData as WorkerStart);
}
