/** Adds `value` to a Vary header value unless it (or `*`) is already there. */
export function appendVary(current: unknown, value: string): string {
  if (current === undefined || current === '') return value; // the usual case: no split
  const s = Array.isArray(current) ? current.join(', ') : String(current);
  if (s.split(',').some((v) => v.trim().toLowerCase() === value.toLowerCase() || v.trim() === '*')) return s;
  return s ? `${s}, ${value}` : value;
}
