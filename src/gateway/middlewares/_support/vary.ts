/** Adds `value` to a Vary header value unless it (or `*`) is already there. */
export function appendVary(current: unknown, value: string): string {
  const s = current === undefined ? '' : Array.isArray(current) ? current.join(', ') : String(current);
  if (s.split(',').some((v) => v.trim().toLowerCase() === value.toLowerCase() || v.trim() === '*')) return s;
  return s ? `${s}, ${value}` : value;
}
