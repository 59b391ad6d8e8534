import cluster from 'node:cluster';
import { fstatSync } from 'node:fs';
import pino from 'pino';

/**
 * Where JSON log lines go: a buffered, asynchronous writer, as nginx (`buffer=`/`flush=`) and
 * Envoy do for access logs. A request never waits for the disk: lines gather in memory and leave
 * in large writes, at least every `flushMs`. When the destination cannot keep up (a slow disk,
 * a pipe nobody reads), the buffer stops at `maxBufferBytes` and further lines are dropped and
 * counted instead of growing memory or blocking requests.
 *
 * sonic-boom (pino's own writer, through `pino.destination`) does the buffering and the
 * asynchronous writes; what it lacks is a bounded final flush (its flushSync retries a full pipe
 * forever, and pino calls it at exit) and the drop count, which are added here.
 */

/** What the gateway asks for: nginx-like large writes, at least once a second (Envoy's default). */
export const BUFFERED: LogDestinationOptions = { bufferBytes: 16 * 1024, flushMs: 1000 };

/** A gateway worker's writes to a pipe or socket stay within POSIX's PIPE_BUF, so its lines never interleave with another worker's. */
const PIPE_BUF = 4096;

export interface LogDestinationOptions {
  /** File descriptor to write to (default 2, stderr). */
  fd?: number;
  /** Bytes gathered before a write: 0 writes each line as soon as the previous write is done (default). */
  bufferBytes?: number;
  /** Longest a line waits in the buffer, ms (default 1000). */
  flushMs?: number;
  /** Most bytes held while the destination is busy; lines past it are dropped (default 1 MiB, about 3,000 access lines). */
  maxBufferBytes?: number;
}

/** A log destination and its counters. */
export interface LogDestination {
  /** The stream pino writes to. */
  readonly stream: { write(line: string): boolean; flush(): void; flushSync(): void };
  /** Lines dropped because the destination could not keep up. */
  readonly dropped: number;
  /** Writes everything buffered, waiting at most `deadlineMs`; false if lines were still held at the deadline. */
  flush(deadlineMs?: number): Promise<boolean>;
}

/** Opens the buffered destination on `fd`. */
export function createLogDestination(options: LogDestinationOptions = {}): LogDestination {
  const fd = options.fd ?? 2;
  // Only workers of one gateway share a pipe with each other: elsewhere large writes are safe.
  const shared = cluster.isWorker && !isRegularFile(fd);
  const maxWrite = shared ? PIPE_BUF : 64 * 1024;
  const bufferBytes = Math.min(options.bufferBytes ?? 0, maxWrite - 1);
  let dropped = 0;
  let exiting = false;
  const boom = pino.destination({
    // Buffers, not strings: in string mode sonic-boom measures the byte length of its whole
    // pending chunk on every write, which flattens a 16 KiB rope per log line.
    contentMode: 'buffer',
    fd,
    // Made synchronous, then switched to asynchronous writes below: for an asynchronous stream
    // pino.destination adds exit hooks that fsync stderr on the way out (a second or more on a
    // busy disk) and retry a full pipe forever. This module owns the exit path instead:
    // flushLogger() before exiting, the 'exit' hook below as the last resort.
    sync: true,
    minLength: bufferBytes,
    maxWrite,
    maxLength: options.maxBufferBytes ?? 1024 * 1024,
    periodicFlush: options.flushMs ?? 1000,
    // A full pipe is retried while the process runs; at exit, waiting would hang it forever.
    retryEAGAIN: () => !exiting,
  });
  (boom as unknown as { sync: boolean }).sync = false;
  const stream = {
    write: (line: string) => boom.write(Buffer.from(line) as unknown as string),
    flush: () => boom.flush(),
    flushSync: () => boom.flushSync(),
  };
  // sonic-boom's state, read to know when everything held has left (its types omit these).
  const internals = boom as unknown as { destroyed: boolean; fd: number; _len: number; _writing: boolean };
  boom.on('drop', () => {
    dropped++;
  });
  // A destination that breaks (EPIPE: the reader went away) must not crash the process it logs for.
  boom.on('error', () => {
    exiting = true;
  });
  // Last chance on process.exit(): write what is held if it goes without waiting.
  // A write still under way at exit means the destination
  // is stuck (a blocking pipe nobody reads): a synchronous write would hang the exit, so none is tried.
  const onExit = () => {
    exiting = true;
    try {
      // Only when something is held: flushSync ends with an fsync, which can take a second.
      if (!internals.destroyed && internals.fd >= 0 && !internals._writing && internals._len > 0) {
        stream.flushSync();
      }
    } catch {
      // Full pipe or closed descriptor: the lines cannot be written, and waiting would hang.
    }
  };
  process.prependOnceListener('exit', onExit);

  return {
    stream,
    get dropped() {
      return dropped;
    },
    async flush(deadlineMs = 5_000) {
      const until = Date.now() + deadlineMs;
      while (internals._len > 0 && !internals.destroyed && !exiting && Date.now() < until) {
        if (internals.fd >= 0) stream.flush();
        await new Promise((r) => setTimeout(r, 5));
      }
      return internals._len === 0;
    },
  };
}

function isRegularFile(fd: number): boolean {
  try {
    return fstatSync(fd).isFile();
  } catch {
    return false;
  }
}
