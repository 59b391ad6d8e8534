/** `Retry-After` as ms: delta-seconds or an HTTP date (RFC 9110 10.2.3); undefined if absent or bad. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  if (typeof value !== 'string') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The `Retry-After` of undici's raw response headers, as ms (see `retryAfterMs`). */
export function retryAfterOfRaw(raw: Buffer[] | string[], now = Date.now()): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    if (name.length === 11 && name.toLowerCase() === 'retry-after')
      return retryAfterMs(raw[i + 1]!.toString('latin1'), now);
  }
  return undefined;
}
