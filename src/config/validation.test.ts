import { describe, expect, it } from 'vitest';
import { compileJsonSchema, validateDocument } from './validation.js';

describe('document validation', () => {
  it('enforces required fields even when they have no properties entry (JSON Schema semantics)', () => {
    const schema = compileJsonSchema({
      type: 'object',
      properties: { routes: { type: 'array', items: { type: 'object', required: ['path'] } } },
    });
    expect(validateDocument({ routes: [{ path: '/a' }, {}] }, schema)).toEqual([
      { path: 'routes[1].path', message: 'missing required field "path"' },
    ]);
  });

  it('reports unknown fields by path and refuses unusable schemas', () => {
    const schema = compileJsonSchema({ type: 'object', additionalProperties: false, properties: { a: {} } });
    expect(validateDocument({ a: 1, b: 2 }, schema)).toEqual([{ path: 'b', message: 'unknown field "b"' }]);
    expect(() => compileJsonSchema([1])).toThrow(/must be an object or a boolean/);
  });
});
