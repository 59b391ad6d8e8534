import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { messageOf, TrellisError } from '../core/errors.js';
import { LIVE_KEY, type LivePointer, type ReleaseManifest, releaseManifestKey } from './release.js';
import type { ObjectStorage } from './storage.js';
import type { ContentSource, ReadRange, StaticEntry, Variant } from './types.js';

interface Live {
  id: string;
  files: Map<string, StaticEntry>;
  dirs: Set<string>;
}

/**
 * Serves the live release of a published site (folder or bucket). Everything about a file comes
 * from the release manifest, so a request costs no metadata round trip to the store; the live
 * pointer is re-read every `revalidateMs`, and a new release is swapped in whole. When the store
 * cannot be reached, the last release read keeps serving.
 */
export class ReleaseSource implements ContentSource {
  private live: Live | undefined;
  private checkedAt = Number.NEGATIVE_INFINITY;
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly storage: ObjectStorage,
    private readonly revalidateMs: number,
    private readonly logger: Logger,
  ) {}

  /** Reads the live pointer now (start-up, tests). */
  async refresh(): Promise<void> {
    const raw = await this.storage.get(LIVE_KEY);
    if (raw === undefined) {
      this.checkedAt = performance.now();
      return;
    }
    const pointer = JSON.parse(raw.toString('utf8')) as LivePointer;
    if (this.live?.id !== pointer.release) {
      const manifests: ReleaseManifest[] = [];
      for (const id of [pointer.release, ...pointer.history.filter((h) => h !== pointer.release)]) {
        const text = await this.storage.get(releaseManifestKey(id));
        if (text !== undefined) manifests.push(JSON.parse(text.toString('utf8')) as ReleaseManifest);
        else if (id === pointer.release) throw new Error(`release ${id} is live but its manifest is missing`);
      }
      this.live = compile(manifests);
      this.logger.info({ root: this.storage.url, release: pointer.release }, 'static: serving release');
    }
    this.checkedAt = performance.now();
  }

  private async current(): Promise<Live> {
    if (performance.now() - this.checkedAt >= this.revalidateMs) {
      this.refreshing ??= this.refresh()
        .catch((err: unknown) => {
          this.checkedAt = performance.now();
          this.logger.warn(
            { root: this.storage.url, err: messageOf(err) },
            'static: cannot read the live release',
          );
        })
        .finally(() => {
          this.refreshing = undefined;
        });
      // Only the first load waits; afterwards the known release serves while the pointer is read.
      if (this.live === undefined) await this.refreshing;
    }
    if (this.live === undefined) {
      throw new TrellisError(
        'TRELLIS_E_STATIC_NOT_PUBLISHED',
        `${this.storage.url} has no live release: run trellis static publish DIR --to ${this.storage.url}`,
        { status: 503 },
      );
    }
    return this.live;
  }

  async lookup(rel: string): Promise<StaticEntry | 'directory' | undefined> {
    const live = await this.current();
    const entry = live.files.get(rel);
    if (entry !== undefined) return entry;
    return live.dirs.has(rel) ? 'directory' : undefined;
  }

  read(entry: StaticEntry, variant: Variant | undefined): Promise<Buffer> {
    const key = variant?.ref ?? entry.ref;
    return this.storage.get(key).then((b) => {
      if (b === undefined) throw Object.assign(new Error(`${key} is missing`), { code: 'ENOENT' });
      return b;
    });
  }

  stream(entry: StaticEntry, variant: Variant | undefined, range?: ReadRange): Promise<Readable> {
    return this.storage.stream(variant?.ref ?? entry.ref, range);
  }

  forget(): void {
    this.checkedAt = Number.NEGATIVE_INFINITY;
  }

  async close(): Promise<void> {
    this.storage.close();
  }
}

/**
 * The live release's paths, plus the content-hashed assets of the older releases still kept:
 * a page loaded before the switch goes on loading its chunks by their old names.
 */
function compile(manifests: readonly ReleaseManifest[]): Live {
  const files = new Map<string, StaticEntry>();
  const dirs = new Set<string>(['']);
  for (const [i, manifest] of manifests.entries()) addRelease(files, dirs, manifest, i > 0);
  return { id: manifests[0]!.id, files, dirs };
}

function addRelease(
  files: Map<string, StaticEntry>,
  dirs: Set<string>,
  manifest: ReleaseManifest,
  older: boolean,
): void {
  const mtimeMs = Date.parse(manifest.createdAt);
  for (const [rel, f] of Object.entries(manifest.files)) {
    if (older && (!f.asset || files.has(rel))) continue;
    files.set(rel, {
      rel,
      size: f.size,
      mtimeMs,
      hash: Buffer.from(f.sha256, 'hex').toString('base64url'),
      contentType: f.contentType,
      cacheControl: f.cacheControl,
      variants: f.variants.map((v) => ({ encoding: v.encoding, size: v.size, ref: v.key })),
      negotiable: f.variants.length > 0,
      ref: f.key,
    });
    for (let i = rel.indexOf('/'); i !== -1; i = rel.indexOf('/', i + 1)) dirs.add(rel.slice(0, i));
  }
}
