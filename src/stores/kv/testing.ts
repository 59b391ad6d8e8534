/** Helpers for the conformance suites and the integration tier (imported by tests only). */
import { isTrellisError } from '../../core/errors.js';

/** Terminates every PostgreSQL connection whose application_name is `app` (pg_terminate_backend). */
export async function terminateBackends(adminUrl: string, app: string): Promise<number> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rowCount } = await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [app],
    );
    return rowCount ?? 0;
  } finally {
    await c.end();
  }
}

/** Kills every Redis client connection named `name` (CLIENT KILL ID …), as a server restart would. */
export async function killRedisClients(url: string, name: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const admin = new Redis(url, { lazyConnect: true });
  await admin.connect();
  let killed = 0;
  try {
    const list = (await admin.call('CLIENT', 'LIST')) as string;
    for (const line of list.split('\n')) {
      const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
      if (id && line.includes(` name=${name} `))
        killed += Number(await admin.call('CLIENT', 'KILL', 'ID', id));
    }
    return killed;
  } finally {
    admin.disconnect();
  }
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function until<T>(
  fn: () => Promise<T | undefined | false>,
  ms = 15_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** The TrellisError code a promise rejects with ('no error' / 'untyped: …' otherwise). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'no error';
  } catch (err) {
    return isTrellisError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

/** A loopback TCP proxy in front of a real server, whose connections a test can cut. */
export interface CuttableProxy {
  /** The proxy's address, `127.0.0.1:port`. */
  address: string;
  /** Destroys every open connection (the server and the proxy stay up); returns how many. */
  cut(): number;
  /**
   * Stops relaying bytes either way while keeping every connection open: the server looks
   * hung (not down), as a stalled host or a full network path does. Held bytes go on at `thaw`.
   */
  freeze(): void;
  /** Relays again, held bytes first. */
  thaw(): void;
  close(): Promise<void>;
}

/**
 * Starts a TCP proxy to `host:port`. For engines with no way to drop one client's connections
 * from the server side (etcd), cutting them here is what a network failure looks like.
 */
export async function cuttableProxy(host: string, port: number): Promise<CuttableProxy> {
  const { createServer, connect } = await import('node:net');
  type Socket = import('node:net').Socket;
  const sockets = new Set<Socket>();
  let frozen = false;
  /** Bytes held while frozen, per destination socket, in arrival order. */
  const held: { to: Socket; chunk: Buffer }[] = [];
  const relay = (from: Socket, to: Socket) =>
    from.on('data', (chunk: Buffer) => {
      if (frozen) held.push({ to, chunk });
      else to.write(chunk);
    });
  const server = createServer((client) => {
    const upstream = connect({ host, port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    relay(client, upstream);
    relay(upstream, client);
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port: local } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${local}`,
    cut() {
      const n = sockets.size;
      for (const s of sockets) s.destroy();
      return n;
    },
    freeze() {
      frozen = true;
    },
    thaw() {
      frozen = false;
      for (const { to, chunk } of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
