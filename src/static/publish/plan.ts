import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { compileCacheRules, isHashedAsset } from '../cache-rules.js';
import { hexOf, sha256Stream } from '../etag.js';
import { contentTypeOf } from '../mime.js';
import { releaseFileKey } from '../release.js';
import { eachLimited, isCompressible, listFiles } from '../walk.js';

/** One file of the build and where it goes. Bytes are read only when it is uploaded. */
export interface PlannedFile {
  rel: string;
  /** Absolute path in the build folder. */
  path: string;
  asset: boolean;
  /** Object key of the identity bytes; variants are `key.br` / `key.gz`. */
  key: string;
  size: number;
  /** Hex SHA-256. */
  sha256: string;
  contentType: string;
  cacheControl: string;
  /** Worth trying br/gzip variants for (kept only when clearly smaller). */
  compressible: boolean;
}

export interface BuildPlan {
  release: string;
  createdAt: string;
  files: PlannedFile[];
  bytes: number;
}

export interface PlanOptions {
  /** Cache-Control rules (the handler's defaults when empty). */
  cacheControl?: { match: string; value: string }[];
  /** Which paths are content-hashed assets (default: a hash in the file name). */
  isAsset?: (rel: string) => boolean;
  /** Make br/gzip variants of compressible files (default true). */
  compress?: boolean;
  now?: Date;
}

const MIN_COMPRESS = 1024;

/**
 * Lists and hashes a build folder (streaming: no file is held in memory) and decides each
 * file's key and headers. The release id is the time plus a digest of every path and hash.
 */
export async function planBuild(dir: string, o: PlanOptions = {}): Promise<BuildPlan> {
  const rules = compileCacheRules(o.cacheControl ?? []);
  const isAsset = o.isAsset ?? isHashedAsset;
  const rels = (await listFiles(dir)).filter((r) => !r.endsWith('.br') && !r.endsWith('.gz'));
  const now = o.now ?? new Date();
  const hashed = new Map<string, { size: number; sha256: string }>();
  await eachLimited(rels, 4, async (rel) => {
    const path = join(dir, rel);
    const [st, hash] = await Promise.all([stat(path), sha256Stream(createReadStream(path))]);
    hashed.set(rel, { size: st.size, sha256: hexOf(hash) });
  });
  const digest = createHash('sha256');
  for (const rel of rels) digest.update(`${rel}\0${hashed.get(rel)!.sha256}\n`);
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const release = `${stamp}-${digest.digest('hex').slice(0, 10)}`;
  let bytes = 0;
  const files = rels.map((rel): PlannedFile => {
    const { size, sha256 } = hashed.get(rel)!;
    const asset = isAsset(rel);
    const contentType = contentTypeOf(rel);
    bytes += size;
    return {
      rel,
      path: join(dir, rel),
      asset,
      key: asset ? rel : releaseFileKey(release, rel),
      size,
      sha256,
      contentType,
      cacheControl: rules(rel),
      compressible: (o.compress ?? true) && isCompressible(contentType) && size >= MIN_COMPRESS,
    };
  });
  return { release, createdAt: now.toISOString(), files, bytes };
}
