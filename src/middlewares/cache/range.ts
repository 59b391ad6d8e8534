/** Range requests answered from a stored full response (RFC 9111 3.3, RFC 9110 14). */
import type { RequestContext } from '../../http/types.js';
import { refuse } from '../_support/refuse.js';
import { byteRange, parseHttpDate } from './policy.js';
import type { CacheEntry } from './store.js';

function header(v: string | string[] | number | undefined): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

/** Whether If-Range lets a range be answered from this entry (RFC 9110 13.1.5: strong match). */
function ifRangeHolds(value: string | undefined, e: CacheEntry): boolean {
  if (value === undefined) return true;
  const v = value.trim();
  if (v.startsWith('"') || v.startsWith('W/')) {
    const etag = header(e.headers.etag);
    return etag !== undefined && !etag.startsWith('W/') && !v.startsWith('W/') && etag === v;
  }
  const lm = header(e.headers['last-modified']);
  const d = parseHttpDate(v);
  return lm !== undefined && !Number.isNaN(d) && parseHttpDate(lm) === d;
}

/**
 * Answers a `Range` request from a stored full response (RFC 9111 3.3 allows it): 206 with the
 * part, or 416. False when the whole body should go instead (several ranges, If-Range not
 * matching, a malformed value).
 */
export function servePart(ctx: RequestContext, e: CacheEntry, age: string, cacheStatus: string): boolean {
  if (!ifRangeHolds(header(ctx.req.headers['if-range']), e)) return false;
  const range = byteRange(header(ctx.req.headers.range), e.body.length);
  if (range === 'ignore') return false;
  if (range === 'unsatisfiable') {
    refuse(ctx, {
      status: 416,
      code: 'TRELLIS_E_CACHE_RANGE_NOT_SATISFIABLE',
      detail: `the range is outside the ${e.body.length} bytes of the stored response`,
      headers: { 'content-range': `bytes */${e.body.length}`, 'cache-status': cacheStatus },
    });
    return true;
  }
  const part = e.body.subarray(range.start, range.end + 1);
  ctx.res.writeHead(206, {
    ...e.headers,
    'content-length': String(part.length),
    'content-range': `bytes ${range.start}-${range.end}/${e.body.length}`,
    age,
    'cache-status': cacheStatus,
    'x-request-id': ctx.requestId,
  });
  ctx.res.end(part);
  return true;
}
