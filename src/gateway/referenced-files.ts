import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { GatewayConfig } from './schema.js';

/** A file (or folder) a gateway configuration names, and where in the configuration it is named. */
export interface ReferencedFile {
  /** Path inside the configuration, like `listen.tls.cert`. */
  path: (string | number)[];
  /** Absolute path on disk (relative ones start at `baseDir`, the configuration file's folder). */
  file: string;
  /** What it is, for messages: `certificate`, `private key`, `JWKS file`, … */
  what: string;
  /** A folder (static roots) or a file. */
  kind: 'file' | 'directory';
}

type Loose = Record<string, unknown>;
const str = (v: unknown): v is string => typeof v === 'string' && v !== '';

/**
 * Every file a configuration refers to: TLS certificates, keys and client CA bundles of each
 * listener, JWKS files of jwt middlewares, static roots, translation files, translator modules
 * and contract files of routes. (Paths inside a translation file start at that file's folder
 * and are its own loader's business.) `trellis validate` checks that
 * each is readable; a runtime can watch them to pick up a changed one.
 */
export function referencedFiles(config: GatewayConfig, baseDir: string): ReferencedFile[] {
  const out: ReferencedFile[] = [];
  const add = (
    path: (string | number)[],
    value: unknown,
    what: string,
    kind: 'file' | 'directory' = 'file',
  ) => {
    // A URL (an `s3://` static root) is not on this disk.
    if (str(value) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
      out.push({ path, file: resolve(baseDir, value), what, kind });
    }
  };
  const listener = (listen: unknown, base: (string | number)[]) => {
    const tls = (listen as Loose | undefined)?.tls as Loose | undefined;
    if (!tls) return;
    add([...base, 'tls', 'cert'], tls.cert, 'certificate');
    add([...base, 'tls', 'key'], tls.key, 'private key');
    add([...base, 'tls', 'clientCa'], tls.clientCa, 'client CA bundle');
    ((tls.certificates as Loose[] | undefined) ?? []).forEach((c, i) => {
      add([...base, 'tls', 'certificates', i, 'cert'], c.cert, 'certificate');
      add([...base, 'tls', 'certificates', i, 'key'], c.key, 'private key');
    });
  };
  const routes = (list: unknown, base: (string | number)[]) => {
    ((list as Loose[] | undefined) ?? []).forEach((r, i) => {
      const root = (r.static as Loose | undefined)?.root;
      add([...base, i, 'static', 'root'], root, 'static root', 'directory');
      const translate = r.translate as Loose | undefined;
      if (translate) {
        const at = [...base, i, 'translate'];
        add([...at, 'file'], translate.file, 'translation file');
        add([...at, 'module'], translate.module, 'translator module');
        // A contract is a JSON Schema inline, or the path of one.
        add([...at, 'request', 'contract'], (translate.request as Loose | undefined)?.contract, 'contract');
        add([...at, 'legacy', 'contract'], (translate.legacy as Loose | undefined)?.contract, 'contract');
      }
    });
  };
  listener(config.listen, ['listen']);
  routes(config.routes, ['routes']);
  for (const [name, f] of Object.entries(config.frontends)) {
    listener(f.listen, ['frontends', name, 'listen']);
    routes(f.routes, ['frontends', name, 'routes']);
  }
  for (const [name, entry] of Object.entries(config.middlewares)) {
    const jwt = (entry as Loose).jwt as Loose | undefined;
    add(['middlewares', name, 'jwt', 'jwksFile'], jwt?.jwksFile, 'JWKS file');
  }
  return out;
}

/** Why a referenced file cannot be used (missing, unreadable, a folder where a file belongs), or undefined. */
export function referencedFileProblem(ref: ReferencedFile): string | undefined {
  try {
    const stat = statSync(ref.file);
    if (ref.kind === 'directory' && !stat.isDirectory()) return `${ref.what} ${ref.file} is not a folder`;
    if (ref.kind === 'file' && stat.isDirectory()) return `${ref.what} ${ref.file} is a folder, not a file`;
    accessSync(ref.file, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      return `${ref.what} ${ref.file} does not exist (relative paths start at the configuration file's folder)`;
    }
    if (code === 'EACCES' || code === 'EPERM')
      return `${ref.what} ${ref.file} cannot be read: check its permissions`;
    return `${ref.what} ${ref.file} cannot be read (${code ?? String(err)})`;
  }
}
