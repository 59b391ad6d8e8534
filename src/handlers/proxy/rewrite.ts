import type { RequestContext } from '../../http/types.js';

/** How a route changes the path before forwarding (all optional, applied in this order). */
export interface RewriteOptions {
  /** Removed from the front of the path when present (`/api` turns `/api/x` into `/x`). */
  stripPrefix?: string | undefined;
  /** Put in front of the path (`/v2` turns `/x` into `/v2/x`). */
  addPrefix?: string | undefined;
  /** Replaces the path: `{name}` is a route parameter, `{*}` the wildcard's match. */
  rewrite?: string | undefined;
}

/** Compiles rewrite options into a function from request to upstream target (path + query). */
export function compileRewrite(options: RewriteOptions): (ctx: RequestContext) => string {
  const strip = options.stripPrefix?.replace(/\/$/, '');
  const add = options.addPrefix?.replace(/\/$/, '');
  const template = options.rewrite === undefined ? undefined : compileTemplate(options.rewrite);
  if (!strip && !add && !template) {
    return (ctx) => (ctx.query === '' ? ctx.path : `${ctx.path}?${ctx.query}`);
  }
  return (ctx) => {
    let path = template ? template(ctx.params) : ctx.path;
    if (strip && (path === strip || path.startsWith(`${strip}/`))) path = path.slice(strip.length) || '/';
    if (add) path = path === '/' ? `${add}/` : `${add}${path}`;
    return ctx.query === '' ? path : `${path}?${ctx.query}`;
  };
}

/** `/v2/items/{id}` → a function of the params. Params are re-encoded; `{*}` keeps its slashes. */
function compileTemplate(template: string): (params: Record<string, string>) => string {
  const parts = template.split(/(\{[^}]+\})/);
  return (params) => {
    let out = '';
    for (const part of parts) {
      if (part.startsWith('{') && part.endsWith('}')) {
        const name = part.slice(1, -1);
        const value = params[name] ?? '';
        out += name === '*' ? value.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(value);
      } else {
        out += part;
      }
    }
    return out;
  };
}
