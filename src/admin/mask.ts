/** Keys whose values are secrets: never shown by the admin API or in logs. */
const SECRET_KEY =
  /pass(word|wd|phrase)?|pwd|secret|token|credential|private|api[-_]?key|^key$|keys$|authorization|cookie|salt|signature/i;

const MASK = '***';

/**
 * Secrets recognised by the value's shape, wherever they sit (a header value in a list, a URL in
 * a free-form string), because a key name alone misses them. Each rule keeps what helps a reader
 * (the scheme, the parameter name, the user) and hides only the secret part.
 */
const VALUE_RULES: [RegExp, string | ((...m: string[]) => string)][] = [
  // URL user-info: scheme://user:password@host. The password may itself contain '@' (a raw
  // `p@ss`), so it runs to the last '@' that is followed by a host; a '/' ends it (a path).
  [/\b([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^/\s]*@(?=[^@/\s]*(?:[/?#\s]|$))/gi, `$1:${MASK}@`],
  // Query parameters that carry credentials: ?access_token=…, &api_key=…, X-Amz-Signature=…
  [
    /([?&;](?:[\w.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|signature|credential)[\w.-]*|key|sig|auth)=)[^&#\s"']*/gi,
    `$1${MASK}`,
  ],
  // HTTP authorization values: "Bearer …", "Negotiate …" whatever follows; "Token …" and
  // "ApiKey …" only before a long credential, so prose such as "token bucket" stays readable.
  [/\b(bearer|negotiate)(\s+)[^\s,;"']+/gi, `$1$2${MASK}`],
  // A Digest value's parameters (response, cnonce, …) all go: the line is one credential.
  [/\b(digest)(\s+)(?=\w+=)[^\n]+/gi, `$1$2${MASK}`],
  [/\b(token|apikey)(\s+)[A-Za-z0-9._~+/=-]{12,}/gi, `$1$2${MASK}`],
  // "Basic <base64 of user:password>" (checked by decoding, so the prose "Basic auth" stays).
  [
    /\b(basic)(\s+)([A-Za-z0-9+/]{4,}={0,2})/gi,
    (whole, scheme, space, b64) =>
      Buffer.from(b64 ?? '', 'base64')
        .toString('utf8')
        .includes(':')
        ? `${scheme}${space}${MASK}`
        : whole!,
  ],
  // A JSON Web Token anywhere (three base64url parts, the first two JSON objects).
  [/\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, MASK],
  // Well-known token prefixes: GitHub, GitLab, Slack, Stripe, AWS access keys, OpenAI-style keys.
  [
    /\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|glpat-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|AKIA[0-9A-Z]{16}|sk-[A-Za-z0-9_-]{20,})\b/g,
    MASK,
  ],
  // PEM private keys pasted inline.
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, MASK],
];

/**
 * A deep copy of `value` with secrets replaced by `"***"`: values under secret-looking keys, and
 * secrets recognised by their shape in any string (URL passwords, credential query parameters,
 * `Bearer`/`Basic` values, JWTs, well-known token prefixes, PEM private keys).
 */
export function maskSecrets(value: unknown, key = ''): unknown {
  if (key !== '' && SECRET_KEY.test(key) && value !== undefined && value !== null && value !== false)
    return MASK;
  if (typeof value === 'string') return maskString(value);
  if (Array.isArray(value)) return value.map((v) => maskSecrets(v));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = maskSecrets(v, k);
    return out;
  }
  return value;
}

/** `s` with every secret recognised by its shape replaced by `***`. */
export function maskString(s: string): string {
  let out = s;
  for (const [pattern, replacement] of VALUE_RULES) {
    pattern.lastIndex = 0;
    out = out.replace(pattern, replacement as string);
  }
  return out;
}
