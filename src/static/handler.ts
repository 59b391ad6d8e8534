import { realpath } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Logger } from 'pino';
import { TrellisError } from '../core/errors.js';
import { sendProblem } from '../http/problem.js';
import type { RequestContext } from '../http/types.js';
import { BodyCache } from './body-cache.js';
import { compileCacheRules } from './cache-rules.js';
import { FolderSource } from './folder-source.js';
import { FolderStorage, isFolder } from './folder-storage.js';
import { LIVE_KEY } from './release.js';
import { ReleaseSource } from './release-source.js';
import { extensionOf, toStaticPath } from './request-path.js';
import { type Responder, respondWithEntry } from './respond.js';
import type { StaticOptions } from './schema.js';
import { openStorage } from './storage.js';
import type { ContentSource, StaticEntry } from './types.js';

/** A created static server: the request handler and what it holds. */
export interface StaticSite {
  handle(ctx: RequestContext): Promise<void>;
  /** The source kind, for logs: `folder`, `release` (folder) or `release` (bucket). */
  readonly kind: 'folder' | 'release';
  readonly source: ContentSource;
  close(): Promise<void>;
}

const ALLOW = 'GET, HEAD';

/** Builds the handler of one `static:` route (the gateway calls it at load and on reload). */
export async function createStaticSite(
  o: StaticOptions,
  deps: { baseDir: string; logger: Logger },
): Promise<StaticSite> {
  const bodies = new BodyCache(o.memoryCache.maxBytes, o.memoryCache.maxFileSize);
  const { source, kind } = await openSource(o, deps, bodies);
  const responder: Responder = {
    source,
    bodies,
    maxRanges: o.maxRanges,
    cacheControl: compileCacheRules(o.cacheControl),
  };
  const tryList = o.try?.map((t) => t.trim());

  const find = async (rel: string, dir: boolean): Promise<StaticEntry | 'redirect' | undefined> => {
    if (dir) {
      for (const index of o.index) {
        const hit = await source.lookup(rel === '' ? index : `${rel}/${index}`);
        if (hit !== undefined && hit !== 'directory') return hit;
      }
      return undefined;
    }
    const hit = await source.lookup(rel);
    if (hit === 'directory') return o.index.length > 0 ? 'redirect' : undefined;
    return hit;
  };

  const handle = async (ctx: RequestContext): Promise<void> => {
    const method = ctx.req.method;
    if (method !== 'GET' && method !== 'HEAD') {
      return refuse(
        ctx,
        405,
        'TRELLIS_E_STATIC_METHOD_NOT_ALLOWED',
        `${method} is not allowed here: use GET or HEAD`,
        {
          allow: ALLOW,
        },
      );
    }
    let path = ctx.path;
    const sp = o.stripPrefix;
    // Only on a segment boundary: /assets strips /assets/x, never /assetsfoo.
    if (
      sp !== undefined &&
      path.startsWith(sp) &&
      (sp.endsWith('/') || path.length === sp.length || path[sp.length] === '/')
    ) {
      path = path.slice(sp.length);
      if (path.charCodeAt(0) !== 47) path = `/${path}`;
    }
    const target = toStaticPath(path, o.dotfiles);
    if (target === 'malformed') {
      return refuse(
        ctx,
        400,
        'TRELLIS_E_BAD_PATH',
        'the path is not a valid percent-encoded UTF-8 file path',
      );
    }
    if (target === 'denied') return notFound(ctx);
    let found: StaticEntry | 'redirect' | undefined;
    if (tryList !== undefined) {
      found = await tryCandidates(
        tryList,
        `/${target.rel}${target.dir && target.rel ? '/' : ''}`,
        o.dotfiles,
        find,
      );
    } else {
      found = await find(target.rel, target.dir);
      if (
        found === undefined &&
        o.spa &&
        !target.dir &&
        extensionOf(target.rel) === '' &&
        !excluded(path, o.spaExclude)
      ) {
        found = await find('', true);
      }
    }
    if (found === 'redirect') return redirectToFolder(ctx);
    if (found === undefined) return notFound(ctx);
    try {
      await respondWithEntry(ctx, found, responder);
    } catch (err) {
      if (!vanished(err) || ctx.res.headersSent) throw err;
      // The file changed or went away between lookup and read: look again, once.
      source.forget(found.rel);
      const again = await find(found.rel, false);
      if (again === undefined || again === 'redirect') return notFound(ctx);
      await respondWithEntry(ctx, again, responder);
    }
  };

  return {
    kind,
    source,
    handle: (ctx) =>
      handle(ctx).catch((err: unknown) => {
        if (err instanceof TrellisError && err.status !== undefined) {
          return refuse(ctx, err.status, err.code, err.message);
        }
        throw err;
      }),
    async close() {
      bodies.clear();
      await source.close();
    },
  };
}

async function openSource(
  o: StaticOptions,
  deps: { baseDir: string; logger: Logger },
  bodies: BodyCache,
): Promise<{ source: ContentSource; kind: 'folder' | 'release' }> {
  if (o.root.startsWith('s3://')) {
    const storage = await openStorage(o.root, o.s3 ?? {});
    const source = new ReleaseSource(storage, o.revalidate, deps.logger);
    // Not fatal: the bucket may come up (or be published to) after the gateway starts.
    await source.refresh().catch(() => {});
    return { source, kind: 'release' };
  }
  const dir = resolvePath(deps.baseDir, o.root);
  if (!(await isFolder(dir))) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_ROOT_INVALID',
      `static root ${dir} is not a folder: create it or fix root:`,
    );
  }
  const root = await realpath(dir);
  const storage = new FolderStorage(root);
  if ((await storage.head(LIVE_KEY).catch(() => undefined)) !== undefined) {
    const source = new ReleaseSource(storage, o.revalidate, deps.logger);
    await source.refresh();
    return { source, kind: 'release' };
  }
  const source = new FolderSource({
    root,
    followSymlinks: o.followSymlinks,
    precompressed: o.precompressed,
    revalidateMs: o.revalidate,
    maxEntries: o.maxEntries,
    maxOpenFiles: o.maxOpenFiles,
    bodies,
  });
  return { source, kind: 'folder' };
}

async function tryCandidates(
  list: readonly string[],
  path: string,
  dotfiles: boolean,
  find: (rel: string, dir: boolean) => Promise<StaticEntry | 'redirect' | undefined>,
): Promise<StaticEntry | undefined> {
  for (const template of list) {
    const candidate = template.replaceAll('{path}', path);
    // Candidates are checked like request paths: a template cannot reach outside the root either.
    const t = toStaticPath(candidate.replace(/\/{2,}/g, '/'), dotfiles);
    if (typeof t === 'string') continue;
    const hit = await find(t.rel, t.dir);
    if (hit !== undefined && hit !== 'redirect') return hit;
  }
  return undefined;
}

function vanished(err: unknown): boolean {
  const e = err as { code?: string; name?: string };
  return e.code === 'ENOENT' || e.name === 'NoSuchKey';
}

function excluded(path: string, prefixes: readonly string[]): boolean {
  return prefixes.some((p) => path === p || path.startsWith(p.endsWith('/') ? p : `${p}/`));
}

function notFound(ctx: RequestContext): void {
  refuse(ctx, 404, 'TRELLIS_E_STATIC_NOT_FOUND', 'no file at this path');
}

function refuse(
  ctx: RequestContext,
  status: number,
  code: string,
  detail: string,
  headers?: Record<string, string>,
): void {
  ctx.errorCode = code;
  sendProblem(ctx, { status, code, detail, ...(headers ? { headers } : {}) });
}

/**
 * A folder asked without its slash: 301 to the slash. No body at all (the send/serve-static
 * redirect page put the path into HTML: CVE-2024-43799/43800), and never `//host` (an open redirect).
 */
function redirectToFolder(ctx: RequestContext): void {
  const location = `/${ctx.path.replace(/^[/\\]+/, '')}/${ctx.query ? `?${ctx.query}` : ''}`;
  ctx.res.writeHead(301, {
    location,
    'content-length': 0,
    'cache-control': 'no-cache',
    'x-request-id': ctx.requestId,
  });
  ctx.res.end();
}
