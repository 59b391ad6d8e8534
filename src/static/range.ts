/**
 * `Range: bytes=…` parsing (RFC 9110 14.1.2). Written here because the handler needs two things
 * the `range-parser` package does not give: a cap on the number of ranges that is checked before
 * any parsing (a 1,000-range header costs one scan for commas), and refusing ranges that overlap
 * (a classic amplification trick) rather than silently merging them.
 */

export interface ByteRange {
  start: number;
  /** Inclusive. */
  end: number;
}

/** `ignore`: not a bytes range we understand, serve the whole file (RFC allows it). */
export type RangeResult = ByteRange[] | 'ignore' | 'unsatisfiable' | 'too-many';

export function parseRange(header: string, size: number, maxRanges: number): RangeResult {
  let commas = 0;
  for (let i = header.indexOf(','); i !== -1; i = header.indexOf(',', i + 1)) {
    if (++commas >= maxRanges) return 'too-many';
  }
  const eq = header.indexOf('=');
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return 'ignore';
  const ranges: ByteRange[] = [];
  for (const part of header.slice(eq + 1).split(',')) {
    const spec = part.trim();
    const m = /^(\d*)-(\d*)$/.exec(spec);
    if (!m || (m[1] === '' && m[2] === '')) return 'ignore';
    let start: number;
    let end: number;
    if (m[1] === '') {
      // Suffix range: the last N bytes.
      const n = Number(m[2]);
      if (n === 0) continue;
      start = Math.max(0, size - n);
      end = size - 1;
    } else {
      start = Number(m[1]);
      end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
      if (m[2] !== '' && Number(m[2]) < start) return 'ignore';
    }
    if (start >= size || start > end) continue;
    ranges.push({ start, end });
  }
  if (ranges.length === 0) return 'unsatisfiable';
  if (ranges.length > 1) {
    const sorted = [...ranges].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) if (sorted[i]!.start <= sorted[i - 1]!.end) return 'too-many';
  }
  return ranges;
}
