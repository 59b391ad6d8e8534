import type { Readable } from 'node:stream';
import { TrellisError } from '../core/errors.js';
import type { ReadRange } from './types.js';

/** What a stored object says about itself. */
export interface ObjectMeta {
  size: number;
  /** The store's own ETag (S3: the MD5 of a single-part upload), without quotes. */
  etag?: string;
  /** Hex SHA-256 recorded at upload. */
  sha256?: string;
  contentType?: string;
  cacheControl?: string;
  contentEncoding?: string;
}

/** Metadata written with an object, served back to clients from a release. */
export interface PutMeta {
  contentType: string;
  cacheControl: string;
  contentEncoding?: string;
  /** Hex SHA-256 of the body. */
  sha256: string;
}

/**
 * The object store a release is published to and served from: an S3-compatible bucket or a
 * folder. Keys are relative (`assets/app.1a2b3c4d.js`, `.trellis/live.json`); the storage adds
 * its own prefix.
 */
export interface ObjectStorage {
  /** For messages: `s3://bucket/prefix` or the folder path. */
  readonly url: string;
  get(key: string): Promise<Buffer | undefined>;
  stream(key: string, range?: ReadRange): Promise<Readable>;
  head(key: string): Promise<ObjectMeta | undefined>;
  /** Writes the whole object; a reader sees the old or the new bytes, never a part. */
  put(key: string, body: Buffer, meta: PutMeta): Promise<void>;
  delete(keys: readonly string[]): Promise<void>;
  close(): void;
}

/** S3 settings; each falls back to the usual AWS_* environment variable. */
export interface S3Settings {
  endpoint?: string;
  region?: string;
  /** Path-style addressing (`endpoint/bucket/key`), the default when an endpoint is given. */
  forcePathStyle?: boolean;
}

/** Opens the storage a `--to` / `root:` URL names: `s3://bucket/prefix` or a folder path. */
export async function openStorage(url: string, s3: S3Settings = {}): Promise<ObjectStorage> {
  if (url.startsWith('s3://')) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(url);
    if (!m) {
      throw new TrellisError(
        'TRELLIS_E_STATIC_TARGET_INVALID',
        `${url}: write s3://bucket or s3://bucket/prefix (bucket names are lower-case letters, digits, dots and dashes)`,
      );
    }
    const { S3Storage } = await import('./s3-storage.js');
    return new S3Storage(m[1]!, (m[2] ?? '').replace(/\/+$/, ''), s3);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw new TrellisError(
      'TRELLIS_E_STATIC_TARGET_INVALID',
      `${url}: only s3://bucket/prefix and folder paths are supported`,
    );
  }
  const { FolderStorage } = await import('./folder-storage.js');
  return new FolderStorage(url);
}
