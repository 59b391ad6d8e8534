import { type FSWatcher, watch } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type ServerOptions } from 'node:https';
import { dirname, resolve } from 'node:path';
import { type CertificateSet, contextFor, loadCertificates } from './certificates.js';
import { setClientIdentity } from './identity.js';
import type { TlsConfig } from './schema.js';

export { type TlsConfig, tlsSchema } from './schema.js';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

/** An HTTPS server plus what it owns beside the socket: file watchers, the redirect listener. */
export interface TlsServer {
  server: Server;
  /** The HTTP→HTTPS redirect listener once started. */
  readonly redirectServer: Server | undefined;
  /** Starts the HTTP→HTTPS redirect listener, when configured. */
  listenRedirect(httpsPort: number): Promise<void>;
  /** Stops watching files and closes the redirect listener. */
  close(): Promise<void>;
}

export interface TlsServerOptions {
  /** Relative certificate paths start here (the configuration file's folder). */
  baseDir?: string;
  /** Told when a changed certificate cannot be loaded (the old one stays in use). */
  onReloadError?: (err: unknown) => void;
  /** Told when changed certificates were swapped in. */
  onReload?: () => void;
}

/**
 * Creates the HTTPS server for a listener: SNI certificate choice, TLS 1.2 minimum, optional
 * mutual TLS with the client identity passed on in a header, and certificate reload without a
 * restart (fs.watch on the files' folders, so a rename-into-place by certbot is seen too).
 */
export function createTlsServer(
  tls: TlsConfig,
  nodeOptions: ServerOptions,
  onRequest: RequestListener,
  opts: TlsServerOptions = {},
): TlsServer {
  const baseDir = opts.baseDir ?? process.cwd();
  let set: CertificateSet = loadCertificates(tls, baseDir);
  const mutual = tls.clientCa !== undefined;
  const handler: RequestListener = (req, res) => {
    setClientIdentity(req, tls.clientCertHeader);
    onRequest(req, res);
  };
  const server = createHttpsServer(
    {
      ...nodeOptions,
      ...set.defaults,
      requestCert: mutual,
      rejectUnauthorized: mutual && tls.requireClientCert,
      SNICallback: (name, cb) => cb(null, contextFor(set, name)),
    },
    handler,
  ) as unknown as Server & { setSecureContext(o: CertificateSet['defaults']): void };

  const watchers: FSWatcher[] = [];
  if (tls.reload) {
    let timer: NodeJS.Timeout | undefined;
    const reload = () => {
      try {
        const next = loadCertificates(tls, baseDir);
        server.setSecureContext(next.defaults);
        set = next;
        opts.onReload?.();
      } catch (err) {
        opts.onReloadError?.(err);
      }
    };
    const names = new Set(set.files);
    for (const dir of new Set(set.files.map((f) => dirname(f)))) {
      const w = watch(dir, (_event, filename) => {
        if (filename !== null && !names.has(resolve(dir, filename.toString()))) return;
        // A cert and its key are usually written one after the other: settle before reloading.
        clearTimeout(timer);
        timer = setTimeout(reload, 100);
      });
      w.on('error', (err) => opts.onReloadError?.(err));
      watchers.push(w);
    }
    server.once('close', () => clearTimeout(timer));
  }

  let redirect: Server | undefined;
  return {
    server,
    get redirectServer() {
      return redirect;
    },
    async listenRedirect(httpsPort) {
      if (!tls.redirectHttp) return;
      const r = createHttpServer((req, res) => {
        const host = (req.headers.host ?? '').replace(/:\d+$/, '');
        // Only a plain host name may go into Location: no open redirect through a crafted Host.
        if (!/^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:.]+\]$/.test(host)) {
          res.writeHead(400, { 'content-type': 'text/plain', connection: 'close' }).end('bad Host header');
          return;
        }
        const port = httpsPort === 443 ? '' : `:${httpsPort}`;
        res.writeHead(308, { location: `https://${host}${port}${req.url ?? '/'}`, 'content-length': '0' });
        res.end();
      });
      redirect = r;
      await new Promise<void>((ok, fail) => {
        r.once('error', fail);
        r.listen(tls.redirectHttp!.port, tls.redirectHttp!.host ?? '0.0.0.0', () => ok());
      });
    },
    async close() {
      for (const w of watchers) w.close();
      if (redirect) {
        const r = redirect;
        r.closeAllConnections();
        await new Promise((ok) => r.close(ok));
      }
    },
  };
}
