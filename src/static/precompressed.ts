import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Encoding } from './types.js';

/**
 * The record `trellis static compress` writes beside the variants it makes
 * (`.trellis/precompressed.json` under the root): for each source file, the SHA-256 of the bytes
 * the variants were made from. A variant is served only while its source still has that hash;
 * a variant made by another tool (no record) is trusted only while it is not older than its source.
 */
export interface PrecompressedRecord {
  version: 1;
  files: Record<string, { sha256: string; br?: number; gzip?: number }>;
}

export const PRECOMPRESSED_FILE = '.trellis/precompressed.json';

/** File suffix of each encoding, best first. */
export const VARIANT_SUFFIX: ReadonlyArray<readonly [Encoding, string]> = [
  ['br', '.br'],
  ['gzip', '.gz'],
];

/** Reads the record of a root (undefined when there is none or it is unreadable). */
export async function readPrecompressedRecord(root: string): Promise<PrecompressedRecord | undefined> {
  try {
    const parsed = JSON.parse(await readFile(join(root, PRECOMPRESSED_FILE), 'utf8')) as PrecompressedRecord;
    return parsed?.version === 1 && typeof parsed.files === 'object' ? parsed : undefined;
  } catch {
    return undefined;
  }
}
