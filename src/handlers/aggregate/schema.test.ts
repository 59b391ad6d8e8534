import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../core/config.js';
import { aggregateSchema } from './schema.js';

/** The loader's message for an invalid aggregate (as `trellis validate` prints it). */
function errorOf(yaml: string): string {
  try {
    parseConfig(yaml, aggregateSchema, 'gw.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the options to be refused');
}

describe('aggregate options are validated at load', () => {
  it('accepts a valid graph with defaults filled in', () => {
    const o = parseConfig(
      `parts:
  product: { service: catalog, path: '/products/{id}' }
  brand: { service: catalog, path: '/brands/{product.brandId}', optional: true, timeout: 200ms }
`,
      aggregateSchema,
    );
    expect(o.parts.brand).toMatchObject({
      method: 'GET',
      optional: true,
      timeout: 200,
      maxBodySize: 1048576,
    });
    expect(o.partTimeout).toBe(10_000);
  });

  it('refuses an unknown part reference, with a suggestion', () => {
    expect(
      errorOf(`parts:
  product: { service: catalog, path: '/products/{id}' }
  brand: { service: catalog, path: '/brands/{prodct.brandId}' }
`),
    ).toBe(
      'gw.yaml:3:36 parts.brand.path: {prodct.brandId}: unknown part "prodct" (did you mean "product"?)',
    );
  });

  it('refuses a cycle, naming the parts in order', () => {
    expect(
      errorOf(`parts:
  a: { service: s, path: '/a/{c.id}' }
  b: { service: s, path: '/b/{a.id}' }
  c: { service: s, path: '/c/{b.id}' }
`),
    ).toBe(
      'gw.yaml:2:6 parts.a: parts form a cycle: a -> c -> b -> a: a part can only use parts that do not use it',
    );
  });

  it('refuses a part that uses itself', () => {
    expect(errorOf(`parts:\n  a: { service: s, path: '/a/{a.id}' }\n`)).toBe(
      'gw.yaml:2:6 parts.a: part "a" depends on itself',
    );
  });

  it('refuses an unsafe method unless the route opts in', () => {
    expect(errorOf(`parts:\n  order: { service: s, path: /orders, method: POST }\n`)).toBe(
      'gw.yaml:2:47 parts.order.method: POST is not a safe method: set allowUnsafe: true on the aggregate to allow one unsafe last step',
    );
  });

  it('refuses a part that depends on the unsafe step', () => {
    expect(
      errorOf(`allowUnsafe: true
parts:
  order: { service: s, path: /orders, method: POST, forwardBody: true }
  receipt: { service: s, path: '/receipts/{order.id}' }
`),
    ).toBe(
      'gw.yaml:4:12 parts.receipt: uses "order", but an unsafe POST call can only be the last step: nothing may depend on it',
    );
  });

  it('refuses forEach over an unknown part and {item} outside forEach', () => {
    expect(
      errorOf(`parts:
  cart: { service: s, path: /cart }
  products: { service: s, path: '/products/{item}', forEach: 'crt.items[*].id' }
  lone: { service: s, path: '/x/{item}' }
`),
    ).toBe(
      [
        'gw.yaml:3:62 parts.products.forEach: unknown part "crt" (did you mean "cart"?): forEach reads a list from another part',
        'gw.yaml:4:29 parts.lone.path: {item} is only available in a part with forEach',
      ].join('\n'),
    );
  });

  it('refuses malformed dot paths in shaping and unknown options', () => {
    expect(
      errorOf(`parts:
  p: { service: s, path: /p, allow: [name, 'images[x]'], rename: { 'items[*].a': b }, timout: 1s }
shape: { deny: ['a..b'] }
`),
    ).toBe(
      [
        'gw.yaml:2:44 parts.p.allow[1]: "images[x]" is not a valid path at character 7: write a dot path like items[*].id',
        'gw.yaml:2:82 parts.p.rename.items[*].a: cannot rename "items[*].a" to "b": inside arrays both paths must share the prefix up to the last [*] (like items[*].a -> items[*].b)',
        'gw.yaml:2:87 parts.p.timout: unknown option "timout" (did you mean "timeout"?)',
        'gw.yaml:3:17 shape.deny[0]: "a..b" is not a valid path: empty name before "."',
      ].join('\n'),
    );
  });
});
