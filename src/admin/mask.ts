/** Keys whose values are secrets: never shown by the admin API or in logs. */
const SECRET_KEY =
  /pass(word)?|secret|token|credential|private|api[-_]?key|^key$|keys$|authorization|cookie|salt/i;

/**
 * A deep copy of `value` with secrets replaced by `"***"`: values under secret-looking keys,
 * and the password part of URLs (`redis://user:***@host`).
 */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (key !== '' && SECRET_KEY.test(key) && value !== undefined && value !== null && value !== false)
    return '***';
  if (typeof value === 'string') return maskUrlPassword(value);
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskSecrets(v, k);
    return out;
  }
  return value;
}

function maskUrlPassword(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]+@/i, '$1:***@');
}
