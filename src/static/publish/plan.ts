import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compileCacheRules, isHashedAsset } from '../cache-rules.js';
import { compressBody } from '../compress.js';
import { hexOf, sha256 } from '../etag.js';
import { contentTypeOf } from '../mime.js';
import { releaseFileKey } from '../release.js';
import type { Encoding } from '../types.js';
import { eachLimited, isCompressible, listFiles } from '../walk.js';

/** One object to upload. */
export interface Upload {
  key: string;
  body: Buffer;
  sha256: string;
  contentType: string;
  cacheControl: string;
  contentEncoding?: Encoding;
}

/** One file of the build, with what will be uploaded for it. */
export interface PlannedFile {
  rel: string;
  asset: boolean;
  identity: Upload;
  variants: Upload[];
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

/** Reads, hashes and (optionally) compresses a build folder into what a release uploads. */
export async function planBuild(dir: string, o: PlanOptions = {}): Promise<BuildPlan> {
  const rules = compileCacheRules(o.cacheControl ?? []);
  const isAsset = o.isAsset ?? isHashedAsset;
  const rels = (await listFiles(dir)).filter((r) => !r.endsWith('.br') && !r.endsWith('.gz'));
  const now = o.now ?? new Date();
  const digest = createHash('sha256');
  const files: PlannedFile[] = [];
  const hashes = new Map<string, string>();
  await eachLimited(rels, 4, async (rel) => {
    const body = await readFile(join(dir, rel));
    hashes.set(rel, hexOf(sha256(body)));
    files.push({
      rel,
      asset: isAsset(rel),
      identity: { key: '', body, sha256: '', contentType: '', cacheControl: '' },
      variants: [],
    });
  });
  files.sort((a, b) => (a.rel < b.rel ? -1 : 1));
  for (const f of files) digest.update(`${f.rel}\0${hashes.get(f.rel)}\n`);
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  const release = `${stamp}-${digest.digest('hex').slice(0, 10)}`;
  let bytes = 0;
  await eachLimited(files, 2, async (f) => {
    const contentType = contentTypeOf(f.rel);
    const cacheControl = rules(f.rel);
    const key = f.asset ? f.rel : releaseFileKey(release, f.rel);
    f.identity = { key, body: f.identity.body, sha256: hashes.get(f.rel)!, contentType, cacheControl };
    bytes += f.identity.body.length;
    if ((o.compress ?? true) && isCompressible(contentType) && f.identity.body.length >= MIN_COMPRESS) {
      const out = await compressBody(f.identity.body);
      for (const [encoding, suffix, data] of [
        ['br', '.br', out.br],
        ['gzip', '.gz', out.gzip],
      ] as const) {
        if (data.length >= f.identity.body.length * 0.95) continue;
        f.variants.push({
          key: key + suffix,
          body: data,
          sha256: hexOf(sha256(data)),
          contentType,
          cacheControl,
          contentEncoding: encoding,
        });
        bytes += data.length;
      }
    }
  });
  return { release, createdAt: now.toISOString(), files, bytes };
}
