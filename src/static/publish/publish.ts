import { createHash } from 'node:crypto';
import { TrellisError } from '../../core/errors.js';
import { hexOf, sha256 } from '../etag.js';
import { keysOf, LIVE_KEY, type LivePointer, type ReleaseManifest, releaseManifestKey } from '../release.js';
import { type ObjectStorage, openStorage, type S3Settings } from '../storage.js';
import { eachLimited } from '../walk.js';
import { type BuildPlan, type PlanOptions, planBuild, type Upload } from './plan.js';
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
  plan: { phase: 'assets' | 'entries' | 'switch' | 'prune'; key: string; bytes: number; present?: boolean }[];
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
    const assets = build.files.filter((f) => f.asset).flatMap((f) => [f.identity, ...f.variants]);
    const entries = build.files.filter((f) => !f.asset).flatMap((f) => [f.identity, ...f.variants]);
    const manifest = manifestOf(build);
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
    await eachLimited(assets, o.concurrency ?? 8, async (u) => {
      presence.set(u.key, await alreadyThere(storage, u));
    });
    for (const u of assets)
      result.plan.push({ phase: 'assets', key: u.key, bytes: u.body.length, present: presence.get(u.key)! });
    for (const u of entries) result.plan.push({ phase: 'entries', key: u.key, bytes: u.body.length });
    result.plan.push({ phase: 'switch', key: releaseManifestKey(build.release), bytes: 0 });
    result.plan.push({ phase: 'switch', key: LIVE_KEY, bytes: 0 });
    for (const id of pruned) result.plan.push({ phase: 'prune', key: releaseManifestKey(id), bytes: 0 });
    if (o.dryRun) return result;

    const upload = async (phase: 'assets' | 'entries', list: Upload[]) => {
      emit({ type: 'phase', phase, files: list.length, bytes: list.reduce((n, u) => n + u.body.length, 0) });
      await eachLimited(list, o.concurrency ?? 8, async (u) => {
        if (presence.get(u.key) === true) {
          result.skipped++;
          emit({ type: 'file', key: u.key, bytes: u.body.length, skipped: true });
          return;
        }
        await putVerified(storage, u);
        result.uploaded++;
        emit({ type: 'file', key: u.key, bytes: u.body.length, skipped: false });
      });
    };
    await upload('assets', assets);
    await upload('entries', entries);

    emit({ type: 'phase', phase: 'switch', files: 2, bytes: 0 });
    const manifestBody = Buffer.from(`${JSON.stringify(manifest)}\n`);
    await putVerified(storage, jsonUpload(releaseManifestKey(build.release), manifestBody));
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
    await putVerified(storage, jsonUpload(LIVE_KEY, pointerBody));
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

function manifestOf(build: BuildPlan): ReleaseManifest {
  const files: ReleaseManifest['files'] = {};
  for (const f of build.files) {
    files[f.rel] = {
      key: f.identity.key,
      sha256: f.identity.sha256,
      size: f.identity.body.length,
      contentType: f.identity.contentType,
      cacheControl: f.identity.cacheControl,
      asset: f.asset,
      variants: f.variants.map((v) => ({ encoding: v.contentEncoding!, key: v.key, size: v.body.length })),
    };
  }
  return { version: 1, id: build.release, createdAt: build.createdAt, files };
}

function jsonUpload(key: string, body: Buffer): Upload {
  return {
    key,
    body,
    sha256: hexOf(sha256(body)),
    contentType: 'application/json',
    cacheControl: 'no-store',
  };
}

/** Whether an asset is already stored with the same bytes; other bytes under a hashed name stop the publish. */
async function alreadyThere(storage: ObjectStorage, u: Upload): Promise<boolean> {
  const meta = await storage.head(u.key);
  if (meta === undefined) return false;
  if (
    meta.sha256 === u.sha256 ||
    (meta.sha256 === undefined && meta.size === u.body.length && meta.etag === md5(u.body))
  ) {
    return true;
  }
  throw new TrellisError(
    'TRELLIS_E_STATIC_ASSET_CHANGED',
    `${storage.url}/${u.key} already exists with other bytes: a content-hashed name must never change content (is the file name really hashed? set cacheControl/asset rules so it is published per release)`,
  );
}

/** Uploads and reads back the object's HEAD: the size and the checksums must match. */
async function putVerified(storage: ObjectStorage, u: Upload): Promise<void> {
  await storage.put(u.key, u.body, {
    contentType: u.contentType,
    cacheControl: u.cacheControl,
    sha256: u.sha256,
    ...(u.contentEncoding ? { contentEncoding: u.contentEncoding } : {}),
  });
  const meta = await storage.head(u.key);
  const ok =
    meta !== undefined &&
    meta.size === u.body.length &&
    (meta.sha256 === undefined || meta.sha256 === u.sha256) &&
    (meta.etag === undefined || meta.etag.includes('-') || meta.etag === md5(u.body));
  if (!ok) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_PUBLISH_FAILED',
      `${storage.url}/${u.key}: the stored object does not match what was uploaded (size or checksum); the live release is unchanged`,
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
