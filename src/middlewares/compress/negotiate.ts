/** Content codings this middleware can produce. */
export type Coding = 'br' | 'gzip';

/** Past this many bytes the rest of an Accept-Encoding header is ignored (abuse guard). */
const MAX_HEADER = 1024;

/**
 * Picks the coding for an `Accept-Encoding` value (RFC 9110 12.5.3): the highest q wins, ties
 * go to the server's order, `q=0` forbids, `*` covers codings not named. Malformed q values
 * count as 0, so a garbled header can only make the answer uncompressed, never break it.
 */
export function negotiate(header: string | undefined, preferred: readonly Coding[]): Coding | undefined {
  if (!header) return undefined;
  const q = new Map<string, number>();
  for (const part of header.slice(0, MAX_HEADER).split(',')) {
    const [rawName, ...params] = part.split(';');
    const name = rawName!.trim().toLowerCase();
    if (!name) continue;
    let weight = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*$/i.exec(p);
      if (/^\s*q\s*=/i.test(p)) weight = m ? Number(m[1]) : 0;
    }
    // The first mention of a coding counts; repeats cannot raise it.
    if (!q.has(name)) q.set(name, weight);
  }
  const star = q.get('*');
  let best: Coding | undefined;
  let bestQ = 0;
  for (const coding of preferred) {
    const w = q.get(coding) ?? star ?? 0;
    if (w > bestQ) {
      best = coding;
      bestQ = w;
    }
  }
  return best;
}
