import type { Variant } from './types.js';

/**
 * Picks the precompressed variant the client accepts, best first (the entry lists br before
 * gzip). Honours `q=0` refusals and `*`; anything unparsable counts as not accepted.
 */
export function pickVariant(
  variants: readonly Variant[],
  acceptEncoding: string | undefined,
): Variant | undefined {
  if (variants.length === 0 || acceptEncoding === undefined || acceptEncoding === '') return undefined;
  // Fast path for the common headers (`gzip, deflate, br`): no q-values at all.
  const simple = !acceptEncoding.includes(';');
  for (const v of variants) {
    if (simple) {
      if (hasToken(acceptEncoding, v.encoding) || hasToken(acceptEncoding, '*')) return v;
    } else if (qualityOf(acceptEncoding, v.encoding) > 0) return v;
  }
  return undefined;
}

function hasToken(header: string, token: string): boolean {
  for (const part of header.split(',')) if (part.trim().toLowerCase() === token) return true;
  return false;
}

function qualityOf(header: string, coding: string): number {
  let star = 0;
  for (const part of header.split(',')) {
    const [name, ...params] = part.split(';');
    const token = name!.trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (!Number.isFinite(q)) q = 0;
    if (token === coding) return q;
    if (token === '*') star = q;
  }
  return star;
}
