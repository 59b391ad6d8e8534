import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { TrellisError } from '../../core/errors.js';
import { compressBody } from '../compress.js';
import { hexOf, sha256 } from '../etag.js';
import {
  keysOf,
  LIVE_KEY,
  type LivePointer,
  type ReleaseFile,
  type ReleaseManifest,
  releaseManifestKey,
} from '../release.js';
import { type ObjectStorage, openStorage, type PutMeta, type S3Settings } from '../storage.js';
import { eachLimited } from '../walk.js';
import { type PlannedFile, type PlanOptions, planBuild } from './plan.js';
import type { PublishEvent } from './progress.js';

export interface PublishOptions extends PlanOptions {
  /** The build folder. */
  dir: string;
  /** `s3://bucket/prefix` or a folder. */
  to: string;
  s3?: S3Settings;
  /** Releases whose files are kept (the new one included); default 3. */
  keep?: number;
  /** Plan only: nothing is written. */
  dryRun?: boolean;
  /** Uploads at once (default 8). */
  concurrency?: number;
  onEvent?: (e: PublishEvent) => void;
}

/** What a publish did (or, with dryRun, would do). */
export interface PublishResult {
  release: string;
  previous: string | undefined;
  dryRun: boolean;
  /** Keys in upload order: assets first, then the release's entry files, then manifest and pointer. */
  plan: {
    phase: 'assets' | 'entries' | 'switch' | 'prune';
    key: string;
    bytes: number;
    present?: boolean;
    /** A br/gzip variant, uploaded only if clearly smaller. */
    variant?: boolean;
  }[];
  uploaded: number;
  skipped: number;
  /** Release ids removed after the switch. */
  pruned: string[];
}

/**
 * Publishes a build so that no client ever sees HTML whose assets are missing:
 *
 * 1. content-hashed assets (and their .br/.gz) go to their own names, each verified by HEAD
 *    (size, S3 ETag = MD5, recorded SHA-256) before anything refers to them; an asset already
 *    there with the same bytes is skipped, one with other bytes stops the publish;
 * 2. HTML, manifests and other unhashed files go under the new release's own prefix, verified;
 * 3. the release manifest, then the live pointer: one write switches every path at once;
 * 4. only then, releases beyond the last `keep` are pruned (their files and the assets no kept
 *    release uses), so pages still open in browsers keep loading their chunks.
 *
 * A publish that fails or is killed at any step before 3 leaves the live pointer, and so the
 * live site, on the previous release with all its files.
 */
export async function publish(o: PublishOptions): Promise<PublishResult> {
  const keep = o.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_PUBLISH_FAILED',
      `--keep ${keep}: keep at least the new release (1 or more)`,
    );
  }
  const emit = o.onEvent ?? (() => {});
  const concurrency = o.concurrency ?? 8;
  const storage = await openStorage(o.to, o.s3 ?? {});
  try {
    const build = await planBuild(o.dir, o);
    if (build.files.length === 0) {
      throw new TrellisError('TRELLIS_E_STATIC_PUBLISH_FAILED', `${o.dir} has no files to publish`);
    }
    const previous = await readPointer(storage);
    const history = [build.release, ...(previous?.history ?? []).filter((id) => id !== build.release)];
    const kept = history.slice(0, keep);
    const pruned = history.slice(keep);
    const assets = build.files.filter((f) => f.asset);
    const entries = build.files.filter((f) => !f.asset);
    const result: PublishResult = {
      release: build.release,
      previous: previous?.release,
      dryRun: o.dryRun === true,
      plan: [],
      uploaded: 0,
      skipped: 0,
      pruned,
    };
    const presence = new Map<string, boolean>();
    await eachLimited(assets, concurrency, async (f) => {
      presence.set(f.key, await alreadyThere(storage, f));
    });
    for (const [phase, list] of [
      ['assets', assets],
      ['entries', entries],
    ] as const) {
      for (const f of list) {
        const present = presence.get(f.key) === true;
        result.plan.push({ phase, key: f.key, bytes: f.size, ...(phase === 'assets' ? { present } : {}) });
        if (f.compressible && !present) {
          for (const suffix of ['.br', '.gz'])
            result.plan.push({ phase, key: f.key + suffix, bytes: 0, variant: true });
        }
      }
    }
    result.plan.push({ phase: 'switch', key: releaseManifestKey(build.release), bytes: 0 });
    result.plan.push({ phase: 'switch', key: LIVE_KEY, bytes: 0 });
    for (const id of pruned) result.plan.push({ phase: 'prune', key: releaseManifestKey(id), bytes: 0 });
    if (o.dryRun) return result;

    const files: ReleaseManifest['files'] = {};
    const upload = async (phase: 'assets' | 'entries', list: PlannedFile[]) => {
      emit({ type: 'phase', phase, files: list.length, bytes: list.reduce((n, f) => n + f.size, 0) });
      // At most `concurrency` files are in memory at once.
      await eachLimited(list, concurrency, async (f) => {
        const present = presence.get(f.key) === true;
        const variants = present ? await storedVariants(storage, f) : await uploadFile(storage, f);
        files[f.rel] = {
          key: f.key,
          sha256: f.sha256,
          size: f.size,
          contentType: f.contentType,
          cacheControl: f.cacheControl,
          asset: f.asset,
          variants,
        };
        if (present) result.skipped++;
        else result.uploaded += 1 + variants.length;
        emit({
          type: 'file',
          key: f.key,
          bytes: f.size,
          skipped: present,
          variants: variants.map((v) => v.encoding),
        });
      });
    };
    await upload('assets', assets);
    await upload('entries', entries);

    emit({ type: 'phase', phase: 'switch', files: 2, bytes: 0 });
    const manifest: ReleaseManifest = {
      version: 1,
      id: build.release,
      createdAt: build.createdAt,
      files: sorted(files),
    };
    const manifestBody = Buffer.from(`${JSON.stringify(manifest)}\n`);
    await putVerified(storage, releaseManifestKey(build.release), manifestBody, jsonMeta(manifestBody));
    emit({
      type: 'file',
      key: releaseManifestKey(build.release),
      bytes: manifestBody.length,
      skipped: false,
    });
    const pointer: LivePointer = {
      version: 1,
      release: build.release,
      history: kept,
      publishedAt: new Date().toISOString(),
    };
    const pointerBody = Buffer.from(`${JSON.stringify(pointer)}\n`);
    await putVerified(storage, LIVE_KEY, pointerBody, jsonMeta(pointerBody));
    emit({ type: 'file', key: LIVE_KEY, bytes: pointerBody.length, skipped: false });

    if (pruned.length > 0) {
      emit({ type: 'phase', phase: 'prune', files: pruned.length, bytes: 0 });
      await prune(storage, manifest, kept.slice(1), pruned, (id) =>
        emit({ type: 'file', key: releaseManifestKey(id), bytes: 0, skipped: false }),
      );
    }
    emit({
      type: 'done',
      release: build.release,
      uploaded: result.uploaded,
      skipped: result.skipped,
      pruned,
    });
    return result;
  } finally {
    storage.close();
  }
}

type ReleaseVariant = ReleaseFile['variants'][number];

/**
 * Reads, compresses and uploads one file: variants first, the identity bytes last, each verified,
 * so an identity object that is there (a retry after a crash) means its variants are too.
 */
async function uploadFile(storage: ObjectStorage, f: PlannedFile): Promise<ReleaseVariant[]> {
  const body = await readFile(f.path);
  if (hexOf(sha256(body)) !== f.sha256) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_PUBLISH_FAILED',
      `${f.rel} changed while it was being published: let the build finish, then publish again`,
    );
  }
  const meta = { contentType: f.contentType, cacheControl: f.cacheControl };
  const variants: ReleaseVariant[] = [];
  if (f.compressible) {
    const out = await compressBody(body);
    for (const [encoding, suffix, data] of [
      ['br', '.br', out.br],
      ['gzip', '.gz', out.gzip],
    ] as const) {
      // A variant that saves less than 5 % is not worth a second representation.
      if (data.length >= body.length * 0.95) continue;
      await putVerified(storage, f.key + suffix, data, {
        ...meta,
        contentEncoding: encoding,
        sha256: hexOf(sha256(data)),
      });
      variants.push({ encoding, key: f.key + suffix, size: data.length });
    }
  }
  await putVerified(storage, f.key, body, { ...meta, sha256: f.sha256 });
  return variants;
}

/** The variants an already-stored asset has (uploaded, verified, before its identity object). */
async function storedVariants(storage: ObjectStorage, f: PlannedFile): Promise<ReleaseVariant[]> {
  const variants: ReleaseVariant[] = [];
  for (const [encoding, suffix] of [
    ['br', '.br'],
    ['gzip', '.gz'],
  ] as const) {
    const meta = await storage.head(f.key + suffix);
    if (meta !== undefined) variants.push({ encoding, key: f.key + suffix, size: meta.size });
  }
  return variants;
}

function sorted(files: ReleaseManifest['files']): ReleaseManifest['files'] {
  return Object.fromEntries(Object.entries(files).sort(([a], [b]) => (a < b ? -1 : 1)));
}

function jsonMeta(body: Buffer): PutMeta {
  return { contentType: 'application/json', cacheControl: 'no-store', sha256: hexOf(sha256(body)) };
}

async function readPointer(storage: ObjectStorage): Promise<LivePointer | undefined> {
  const raw = await storage.get(LIVE_KEY);
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw.toString('utf8')) as LivePointer;
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_PUBLISH_FAILED',
      `${storage.url}/${LIVE_KEY} is not a live pointer`,
      {
        cause: err,
      },
    );
  }
}

/** Whether an asset is already stored with the same bytes; other bytes under a hashed name stop the publish. */
async function alreadyThere(storage: ObjectStorage, f: PlannedFile): Promise<boolean> {
  const meta = await storage.head(f.key);
  // Written by another tool (no recorded hash): uploaded again, under the same hashed name.
  if (meta === undefined || meta.sha256 === undefined) return false;
  if (meta.sha256 === f.sha256) return true;
  throw new TrellisError(
    'TRELLIS_E_STATIC_ASSET_CHANGED',
    `${storage.url}/${f.key} already exists with other bytes: a content-hashed name must never change content (is the file name really hashed? rename the file so it is published per release)`,
  );
}

/** Uploads and reads back the object's HEAD: the size and the checksums must match. */
async function putVerified(storage: ObjectStorage, key: string, body: Buffer, meta: PutMeta): Promise<void> {
  await storage.put(key, body, meta);
  const stored = await storage.head(key);
  const ok =
    stored !== undefined &&
    stored.size === body.length &&
    (stored.sha256 === undefined || stored.sha256 === meta.sha256) &&
    (stored.etag === undefined || stored.etag.includes('-') || stored.etag === md5(body));
  if (!ok) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_PUBLISH_FAILED',
      `${storage.url}/${key}: the stored object does not match what was uploaded (size or checksum); the live release is unchanged`,
    );
  }
}

async function prune(
  storage: ObjectStorage,
  live: ReleaseManifest,
  otherKept: readonly string[],
  pruned: readonly string[],
  onRelease: (id: string) => void,
): Promise<void> {
  const keepKeys = new Set(keysOf(live));
  for (const id of otherKept) {
    const m = await readManifest(storage, id);
    if (m) for (const k of keysOf(m)) keepKeys.add(k);
  }
  for (const id of pruned) {
    const m = await readManifest(storage, id);
    const keys = m ? keysOf(m).filter((k) => !keepKeys.has(k)) : [];
    await storage.delete(keys);
    await storage.delete([releaseManifestKey(id)]);
    onRelease(id);
  }
}

async function readManifest(storage: ObjectStorage, id: string): Promise<ReleaseManifest | undefined> {
  const raw = await storage.get(releaseManifestKey(id));
  return raw === undefined ? undefined : (JSON.parse(raw.toString('utf8')) as ReleaseManifest);
}

function md5(body: Buffer): string {
  return createHash('md5').update(body).digest('hex');
}
