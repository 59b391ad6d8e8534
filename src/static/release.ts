/**
 * The layout of a published site, the same in a folder and in a bucket:
 *
 *   <path>                               content-hashed assets, at their own names (immutable)
 *   <path>.br, <path>.gz                 their precompressed variants
 *   .trellis/releases/<id>/files/<path>  everything else (HTML, manifests, unhashed files) per release
 *   .trellis/releases/<id>.json          the release manifest: every path, its key, hash and headers
 *   .trellis/live.json                   which release is live, and the ones kept before it
 *
 * Switching releases is one write of live.json, so a reader sees the old release or the new one,
 * never a mix, and a publish that dies before that write leaves the old release live with all
 * of its assets.
 */

import type { Encoding } from './types.js';

export const LIVE_KEY = '.trellis/live.json';

export function releaseManifestKey(id: string): string {
  return `.trellis/releases/${id}.json`;
}

export function releaseFileKey(id: string, rel: string): string {
  return `.trellis/releases/${id}/files/${rel}`;
}

/** One path of a release. */
export interface ReleaseFile {
  /** Where the bytes are stored. */
  key: string;
  /** Hex SHA-256 of the identity bytes. */
  sha256: string;
  size: number;
  contentType: string;
  cacheControl: string;
  /** A content-hashed asset, stored at its own name and shared between releases. */
  asset: boolean;
  variants: { encoding: Encoding; key: string; size: number }[];
}

export interface ReleaseManifest {
  version: 1;
  id: string;
  createdAt: string;
  files: Record<string, ReleaseFile>;
}

export interface LivePointer {
  version: 1;
  /** The live release. */
  release: string;
  /** Releases kept, newest first (the live one included). */
  history: string[];
  publishedAt: string;
}

/** Every key a release owns or uses, variants included. */
export function keysOf(manifest: ReleaseManifest): string[] {
  const keys: string[] = [];
  for (const f of Object.values(manifest.files)) {
    keys.push(f.key);
    for (const v of f.variants) keys.push(v.key);
  }
  return keys;
}
