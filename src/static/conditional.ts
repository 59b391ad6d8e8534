/**
 * Conditional requests (RFC 9110 13): If-None-Match (weak comparison) wins over
 * If-Modified-Since; If-Range needs a strong match or the exact Last-Modified date.
 */

/** Whether `If-None-Match` lists the representation's ETag (or `*`). */
export function noneMatchHits(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  const bare = etag.startsWith('W/') ? etag.slice(2) : etag;
  for (const part of header.split(',')) {
    const t = part.trim();
    if ((t.startsWith('W/') ? t.slice(2) : t) === bare) return true;
  }
  return false;
}

/** Whether the representation is unmodified since the `If-Modified-Since` date (second precision). */
export function notModifiedSince(header: string, mtimeMs: number): boolean {
  const since = Date.parse(header);
  return Number.isFinite(since) && Math.floor(mtimeMs / 1000) * 1000 <= since;
}

/** Whether `If-Range` still names this representation, so the Range may be honoured. */
export function ifRangeHolds(header: string, etag: string, lastModified: string): boolean {
  const t = header.trim();
  if (t.startsWith('"')) return t === etag;
  if (t.startsWith('W/')) return false;
  return t === lastModified;
}
