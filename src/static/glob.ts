/**
 * Path patterns for cache rules: `*` (within a segment), `**` (any depth), `?`, `{a,b}`.
 * Hand-written because no glob matcher is a dependency here and rules are compiled once, at
 * load, into one RegExp each.
 */
export function globToRegExp(pattern: string): RegExp {
  let re = '';
  let inBraces = false;
  const p = pattern.replace(/^\/+/, '');
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '*') {
      if (p[i + 1] === '*') {
        i++;
        if (p[i + 1] === '/') {
          i++;
          re += '(?:.*/)?';
        } else re += '.*';
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '{') {
      inBraces = true;
      re += '(?:';
    } else if (c === '}' && inBraces) {
      inBraces = false;
      re += ')';
    } else if (c === ',' && inBraces) re += '|';
    else re += c.replace(/[.+^$()|[\]\\]/g, '\\$&');
  }
  // A pattern without a slash matches the file name at any depth, like .gitignore.
  return new RegExp(p.includes('/') ? `^${re}$` : `^(?:.*/)?${re}$`);
}
