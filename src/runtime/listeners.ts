import type { Logger } from 'pino';
import { messageOf } from '../core/errors.js';
import { createListener, type ListenConfig, type Listener, listenAddress } from '../http/listener.js';
import { TrellisResponse } from '../http/response.js';
import type { Generation } from './compile.js';
import type { ListenerEngine } from './engine.js';
import type { RuntimeMetrics } from './metrics.js';

interface Open {
  listener: Listener;
  /** The listen block as JSON: a listener is reused while it is unchanged. */
  listenKey: string;
  /** The bound port: a new configuration on the same port must take it over in place. */
  port: number;
  /** A Unix socket listener's path (its `port` is 0). */
  socketPath?: string;
}

/** The outcome of `ListenerSet.prepare`. */
export type PreparedListeners =
  | { ok: true; commit(): void; abort(): Promise<void> }
  | { ok: false; error: string };

/**
 * Why a listener could not open, with advice that fits what failed: a taken port, a forbidden
 * one, an address the machine lacks; anything else (a certificate that cannot be read) as it is.
 */
export function listenFailure(where: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE')
    return `${where}: the address is taken: pick a free port or stop the other process`;
  if (code === 'EACCES')
    return `${where}: not allowed to bind there: use a port above 1023 or grant the permission`;
  if (code === 'EADDRNOTAVAIL') return `${where}: this machine has no such address: fix the host`;
  return `${where}: ${messageOf(err)}`;
}

function openError(key: string, listen: ListenConfig, err: unknown): string {
  return listenFailure(`listener ${key} (${listenAddress(listen)})`, err);
}

/**
 * The listeners of a runtime, by key (`main`, a frontend's name). A reload opens what it adds or
 * moves first and swaps only once everything opened: a port that is taken, or a certificate that
 * cannot be read, rejects the reload and leaves the old listeners serving. A listener whose
 * address stays but whose other options change (TLS, limits) must give up its port to be
 * rebound: it is reopened with its old options if the new ones fail.
 */
export class ListenerSet {
  private readonly bound = new Map<string, Open>();
  /** Bound ports by key (and `admin`, set by the runtime); Unix socket listeners are in `sockets`. */
  readonly ports: Record<string, number> = {};
  /** The paths of the Unix socket listeners by key (they have no port). */
  readonly sockets: Record<string, string> = {};

  constructor(
    private readonly deps: {
      baseDir: string;
      logger: Logger;
      metrics: RuntimeMetrics;
      engineFor(key: string): ListenerEngine;
    },
  ) {}

  private async bind(key: string, listen: ListenConfig): Promise<Open> {
    const engine = this.deps.engineFor(key);
    const logger = this.deps.logger;
    const listener = createListener(
      listen,
      { request: engine.request, upgrade: engine.upgrade, ServerResponse: TrellisResponse },
      {
        baseDir: this.deps.baseDir,
        onTlsReload: () => logger.info({ listener: key }, 'TLS certificates reloaded'),
        onTlsReloadError: (err) =>
          logger.error(
            { listener: key, err },
            'TLS certificate reload failed: keeping the previous certificates',
          ),
      },
    );
    try {
      const address = await listener.listen();
      this.deps.metrics.connectionSources.add(() => listener.connections);
      logger.info(
        {
          listener: key,
          address: listen.socket === undefined ? `${address.address}:${address.port}` : listenAddress(listen),
        },
        'listening',
      );
      return {
        listener,
        listenKey: JSON.stringify(listen),
        port: address.port,
        ...(listen.socket === undefined ? {} : { socketPath: listen.socket.path }),
      };
    } catch (err) {
      await listener.close(0).catch(() => undefined);
      throw err;
    }
  }

  /** Shows a bound listener in `ports`, or in `sockets` for a Unix socket. */
  private expose(key: string, o: Open): void {
    if (o.socketPath === undefined) {
      this.ports[key] = o.port;
      delete this.sockets[key];
    } else {
      this.sockets[key] = o.socketPath;
      delete this.ports[key];
    }
  }

  private unexpose(key: string): void {
    delete this.ports[key];
    delete this.sockets[key];
  }

  /** Opens every listener of the first generation; throws (after closing what opened) on failure. */
  async open(gen: Generation): Promise<void> {
    for (const [key, compiled] of gen.listeners) {
      try {
        const o = await this.bind(key, compiled.listen);
        this.bound.set(key, o);
        this.expose(key, o);
      } catch (err) {
        await this.closeAll(0);
        const e = new Error(openError(key, compiled.listen, err), { cause: err });
        throw Object.assign(e, { code: (err as NodeJS.ErrnoException).code });
      }
    }
  }

  /**
   * Opens what `next` adds or moves, without closing anything that serves. `commit` (after the
   * swap) closes what `next` drops or replaced; on failure everything is as it was.
   */
  async prepare(next: Generation, drainMs: number): Promise<PreparedListeners> {
    const fresh = new Map<string, Open>();
    /** Same address, other options: the old one must close before the new one binds. */
    const inPlace: string[] = [];
    for (const [key, compiled] of next.listeners) {
      const existing = this.bound.get(key);
      if (existing?.listenKey === JSON.stringify(compiled.listen)) continue;
      // The same port (whatever the host: 0.0.0.0 holds it for every address) cannot be bound
      // twice; port 0 asks for a new free port, which can.
      // A Unix socket path is the same: the old listener must let go of it first.
      const samePath =
        compiled.listen.socket !== undefined &&
        existing !== undefined &&
        (JSON.parse(existing.listenKey) as ListenConfig).socket?.path === compiled.listen.socket.path;
      if (
        existing !== undefined &&
        (samePath || (compiled.listen.port !== 0 && existing.port === compiled.listen.port))
      ) {
        inPlace.push(key);
        continue;
      }
      try {
        fresh.set(key, await this.bind(key, compiled.listen));
      } catch (err) {
        await Promise.allSettled([...fresh.values()].map((o) => o.listener.close(0)));
        return { ok: false, error: openError(key, compiled.listen, err) };
      }
    }
    const replaced = new Map<string, Open>();
    for (const key of inPlace) {
      const old = this.bound.get(key)!;
      const listen = next.listeners.get(key)!.listen;
      await old.listener.close(drainMs);
      try {
        fresh.set(key, await this.bind(key, listen));
        replaced.set(key, old);
      } catch (err) {
        // Put back every listener given up for this reload, with its old options.
        const restore = [...replaced.keys(), key];
        await Promise.allSettled([...fresh.values()].map((o) => o.listener.close(0)));
        for (const k of restore) {
          const previous = this.bound.get(k)!;
          try {
            const back = await this.bind(k, JSON.parse(previous.listenKey) as ListenConfig);
            this.bound.set(k, back);
            this.expose(k, back);
          } catch (again) {
            this.deps.logger.error(
              { listener: k, err: messageOf(again) },
              'a listener given up for a reload could not be reopened: it is not serving',
            );
            this.bound.delete(k);
            this.unexpose(k);
          }
        }
        return { ok: false, error: openError(key, listen, err) };
      }
    }
    return {
      ok: true,
      abort: async () => {
        // Nothing swapped: close what this reload bound, put back what it rebound in place.
        await Promise.allSettled([...fresh.values()].map((o) => o.listener.close(0)));
        for (const [k, previous] of replaced) {
          try {
            const back = await this.bind(k, JSON.parse(previous.listenKey) as ListenConfig);
            this.bound.set(k, back);
            this.expose(k, back);
          } catch (err) {
            this.deps.logger.error(
              { listener: k, err: messageOf(err) },
              'a listener given up for an aborted reload could not be reopened: it is not serving',
            );
            this.bound.delete(k);
            this.unexpose(k);
          }
        }
      },
      commit: () => {
        for (const [key, o] of fresh) {
          const old = this.bound.get(key);
          this.bound.set(key, o);
          this.expose(key, o);
          if (old !== undefined && !replaced.has(key)) void old.listener.close(drainMs);
        }
        for (const [key, o] of this.bound) {
          if (next.listeners.has(key)) continue;
          this.bound.delete(key);
          this.unexpose(key);
          void o.listener.close(drainMs);
        }
      },
    };
  }

  /** Whether every listener of `gen` is bound and accepting. */
  allListening(gen: Generation): boolean {
    for (const key of gen.listeners.keys()) {
      if (this.bound.get(key)?.listener.server.listening !== true) return false;
    }
    return true;
  }

  /** Each listener of `gen`: its port and whether it is accepting (for /readyz). */
  status(gen: Generation): Record<string, { port: number | null; listening: boolean }> {
    const out: Record<string, { port: number | null; listening: boolean }> = {};
    for (const key of gen.listeners.keys()) {
      const o = this.bound.get(key);
      out[key] = { port: o?.port ?? null, listening: o?.listener.server.listening === true };
    }
    return out;
  }

  async closeAll(deadlineMs: number): Promise<void> {
    const all = [...this.bound.values()];
    this.bound.clear();
    await Promise.allSettled(all.map((o) => o.listener.close(deadlineMs)));
  }
}
