import { createReadStream, type Stats } from 'node:fs';
import { readFile, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { Readable } from 'node:stream';
import type { BodyCache } from './body-cache.js';
import { hexOf, sha256, sha256Stream } from './etag.js';
import { BoundedLru } from './lru.js';
import { contentTypeOf } from './mime.js';
import { OpenFiles } from './open-files.js';
import { type PrecompressedRecord, readPrecompressedRecord, VARIANT_SUFFIX } from './precompressed.js';
import type { ContentSource, ReadRange, StaticEntry, Variant } from './types.js';

export interface FolderSourceOptions {
  /** Absolute, real (symlink-free) path of the root folder. */
  root: string;
  followSymlinks: boolean;
  precompressed: boolean;
  revalidateMs: number;
  maxEntries: number;
  maxOpenFiles: number;
  bodies: BodyCache;
}

type Lookup = StaticEntry | 'directory' | undefined;

interface Cached {
  value: Lookup;
  /** `dev:ino:size:mtime:ctime` of the file the value describes. */
  version: string;
  checkedAt: number;
}

const STREAM_CHUNK = 256 * 1024;

/**
 * Serves a plain folder. Metadata (stat, content hash, valid variants) is cached per path and
 * trusted for `revalidateMs`; after that one async stat decides whether the file changed (the
 * hash is recomputed only for a new version). Concurrent lookups of one path share one
 * filesystem round. Every filesystem call here is async: nothing blocks the event loop.
 */
export class FolderSource implements ContentSource {
  private readonly meta: BoundedLru<string, Cached>;
  private readonly pending = new Map<string, Promise<Lookup>>();
  private readonly files: OpenFiles;
  private record: { value: PrecompressedRecord | undefined; checkedAt: number; loading?: Promise<void> } = {
    value: undefined,
    checkedAt: Number.NEGATIVE_INFINITY,
  };

  constructor(private readonly o: FolderSourceOptions) {
    this.meta = new BoundedLru(o.maxEntries);
    this.files = new OpenFiles(o.maxOpenFiles);
  }

  lookup(rel: string): Promise<Lookup> {
    const cached = this.meta.get(rel);
    if (cached !== undefined && performance.now() - cached.checkedAt < this.o.revalidateMs) {
      return Promise.resolve(cached.value);
    }
    let p = this.pending.get(rel);
    if (p === undefined) {
      p = this.load(rel, cached).finally(() => this.pending.delete(rel));
      this.pending.set(rel, p);
    }
    return p;
  }

  forget(rel: string): void {
    this.meta.delete(rel);
  }

  private async load(rel: string, previous: Cached | undefined): Promise<Lookup> {
    const now = performance.now();
    const full = rel === '' ? this.o.root : join(this.o.root, rel);
    let st: Stats;
    try {
      st = await stat(full);
    } catch {
      this.meta.set(rel, { value: undefined, version: '', checkedAt: now });
      return undefined;
    }
    const version = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    if (previous !== undefined && previous.version === version && previous.value !== undefined) {
      previous.checkedAt = now;
      this.meta.set(rel, previous);
      return previous.value;
    }
    // Symlinks leaving the root are refused unless allowed; realpath resolves every component.
    if (!this.o.followSymlinks && !(await this.insideRoot(full))) {
      this.meta.set(rel, { value: undefined, version, checkedAt: now });
      return undefined;
    }
    let value: Lookup;
    if (st.isDirectory()) value = 'directory';
    else if (!st.isFile()) value = undefined;
    else value = await this.describe(rel, full, st, version);
    this.meta.set(rel, { value, version, checkedAt: now });
    return value;
  }

  private async insideRoot(full: string): Promise<boolean> {
    try {
      const real = await realpath(full);
      return real === this.o.root || real.startsWith(this.o.root + sep);
    } catch {
      return false;
    }
  }

  /** Hashes one version of a file (once) and finds its valid variants. */
  private async describe(
    rel: string,
    full: string,
    st: Stats,
    version: string,
  ): Promise<StaticEntry | undefined> {
    let hash: string;
    let size = st.size;
    try {
      if (this.o.bodies.fits(st.size)) {
        const body = await readFile(full);
        hash = sha256(body);
        size = body.length;
        this.o.bodies.set(hash, 'identity', body);
      } else {
        const held = await this.files.acquire(full, version);
        try {
          hash = await sha256Stream(
            createReadStream('', {
              fd: held.handle,
              autoClose: false,
              start: 0,
              highWaterMark: STREAM_CHUNK,
            }),
          );
        } finally {
          held.release();
        }
      }
    } catch {
      return undefined;
    }
    const { variants, negotiable } = this.o.precompressed
      ? await this.variantsOf(rel, full, st, hash)
      : { variants: [], negotiable: false };
    return {
      rel,
      size,
      mtimeMs: st.mtimeMs,
      hash,
      contentType: contentTypeOf(rel),
      variants,
      negotiable,
      ref: `${full}\n${version}`,
    };
  }

  private async variantsOf(
    rel: string,
    full: string,
    st: Stats,
    hash: string,
  ): Promise<{ variants: Variant[]; negotiable: boolean }> {
    const record = (await this.precompressedRecord())?.files[rel];
    const variants: Variant[] = [];
    let negotiable = false;
    for (const [encoding, suffix] of VARIANT_SUFFIX) {
      let vst: Stats;
      try {
        vst = await stat(full + suffix);
      } catch {
        continue;
      }
      if (!vst.isFile()) continue;
      negotiable = true;
      // A stale variant (made from other bytes) is never served: the source is, uncompressed.
      const valid =
        record !== undefined
          ? record.sha256 === hexOf(hash) && record[encoding] === vst.size
          : vst.mtimeMs >= st.mtimeMs;
      if (valid && vst.size < st.size) {
        variants.push({
          encoding,
          size: vst.size,
          ref: `${full + suffix}\n${vst.dev}:${vst.ino}:${vst.size}:${vst.mtimeMs}`,
        });
      }
    }
    return { variants, negotiable };
  }

  private async precompressedRecord(): Promise<PrecompressedRecord | undefined> {
    const r = this.record;
    if (performance.now() - r.checkedAt >= this.o.revalidateMs) {
      r.loading ??= readPrecompressedRecord(this.o.root).then((value) => {
        this.record = { value, checkedAt: performance.now() };
      });
      await r.loading;
    }
    return this.record.value;
  }

  async read(entry: StaticEntry, variant: Variant | undefined): Promise<Buffer> {
    return readFile(pathOf(variant?.ref ?? entry.ref));
  }

  async stream(entry: StaticEntry, variant: Variant | undefined, range?: ReadRange): Promise<Readable> {
    const ref = variant?.ref ?? entry.ref;
    const nl = ref.indexOf('\n');
    const held = await this.files.acquire(ref.slice(0, nl), ref.slice(nl + 1));
    const s = createReadStream('', {
      fd: held.handle,
      autoClose: false,
      start: range?.start ?? 0,
      ...(range ? { end: range.end } : {}),
      highWaterMark: STREAM_CHUNK,
    });
    s.once('end', held.release);
    s.once('error', held.release);
    s.once('close', held.release);
    return s;
  }

  async close(): Promise<void> {
    this.meta.clear();
    this.files.clear();
  }
}

function pathOf(ref: string): string {
  return ref.slice(0, ref.indexOf('\n'));
}
