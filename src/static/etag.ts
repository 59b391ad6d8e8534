import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';

/**
 * Strong validators from content: the SHA-256 of the bytes, so identical bytes give identical
 * ETags on every replica and a build tool that resets mtimes cannot make a changed file look
 * unchanged (the complaint about mtime+size ETags). Each encoding of a file is its own
 * representation and gets its own ETag.
 */

/** base64url SHA-256 of a buffer. */
export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('base64url');
}

/** base64url SHA-256 of a stream's bytes. */
export async function sha256Stream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('base64url');
}

/** The ETag header value of one representation: `"<hash>"` or `"<hash>.br"`. */
export function etagOf(hash: string, encoding?: string): string {
  return encoding === undefined ? `"${hash}"` : `"${hash}.${encoding}"`;
}

/** base64url SHA-256 (as written in ETags) to the hex form S3 metadata and manifests use. */
export function hexOf(hash: string): string {
  return Buffer.from(hash, 'base64url').toString('hex');
}
