import { globToRegExp } from './glob.js';

/** One `cacheControl:` rule: the first whose pattern matches the path wins. */
export interface CacheRule {
  match: string;
  value: string;
}

/** What hashed build assets get: they never change under their name. */
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** What HTML and other entry points get: always revalidated (cheap with ETags and 304). */
export const REVALIDATE = 'no-cache';

// `app.3f2a1b9c.js`, `index-BkH2xq9Z.css`, `chunk.a1b2c3d4e5.woff2`: a separator, 8+ hash
// characters with at least one digit, then the extension.
const HASHED = /[.-]([A-Za-z0-9_-]{8,})\.[A-Za-z0-9]+$/;

/** Whether a file name carries a content hash, the way bundlers name their output. */
export function isHashedAsset(rel: string): boolean {
  const name = rel.slice(rel.lastIndexOf('/') + 1);
  const m = HASHED.exec(name);
  return m !== null && /\d/.test(m[1]!) && !name.endsWith('.html');
}

/** Compiles the rules into a function of the relative path; defaults follow the user's rules. */
export function compileCacheRules(rules: readonly CacheRule[]): (rel: string) => string {
  const compiled = rules.map((r) => ({ re: globToRegExp(r.match), value: r.value }));
  return (rel) => {
    for (const r of compiled) if (r.re.test(rel)) return r.value;
    return isHashedAsset(rel) ? IMMUTABLE : REVALIDATE;
  };
}
