import type { Readable } from 'node:stream';

/** A content coding the handler can serve precompressed. zstd needs Node >= 22.15 (not here yet). */
export type Encoding = 'br' | 'gzip';

/** A precompressed variant of a file that is known to match its source. */
export interface Variant {
  readonly encoding: Encoding;
  readonly size: number;
  /** Where the source finds the bytes (a file path, an object key). */
  readonly ref: string;
}

/** One version of one file, as the handler answers it. Immutable: a new version is a new entry. */
export interface StaticEntry {
  /** Relative path inside the root. */
  readonly rel: string;
  readonly size: number;
  readonly mtimeMs: number;
  /** base64url SHA-256 of the bytes: the strong ETag. */
  readonly hash: string;
  readonly contentType: string;
  /** Set by a published release; otherwise the handler's rules decide. */
  readonly cacheControl?: string;
  /** Valid precompressed variants, best first. */
  readonly variants: readonly Variant[];
  /** Variants exist on disk (valid or not): the answer depends on Accept-Encoding. */
  readonly negotiable: boolean;
  /** Where the source finds the identity bytes. */
  readonly ref: string;
}

/** A byte range to read, inclusive end. */
export interface ReadRange {
  start: number;
  end: number;
}

/**
 * Where the handler reads files from: a folder, or a published release in a folder or an S3
 * bucket. Lookups are cached and revalidated by the source itself.
 */
export interface ContentSource {
  /** The file at `rel`, `'directory'`, or undefined when nothing is there. */
  lookup(rel: string): Promise<StaticEntry | 'directory' | undefined>;
  /** The whole representation (only asked for small files; the handler caches it). */
  read(entry: StaticEntry, variant: Variant | undefined): Promise<Buffer>;
  /** A stream of the representation's bytes (`range` inclusive). */
  stream(entry: StaticEntry, variant: Variant | undefined, range?: ReadRange): Promise<Readable>;
  /** Drops what is cached about `rel` (the file vanished under a stream). */
  forget(rel: string): void;
  close(): Promise<void>;
}
