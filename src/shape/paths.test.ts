import { describe, expect, it } from 'vitest';
import {
  allowTree,
  applyRename,
  compileRename,
  deletePath,
  getPath,
  limitArray,
  mustParsePath,
  parsePath,
  project,
  type Rename,
  setPath,
} from './paths.js';

const p = mustParsePath;

describe('dot paths', () => {
  it('parses keys, indexes and [*]', () => {
    expect(parsePath('a.b[0].c[*].d')).toEqual([
      { key: 'a' },
      { key: 'b' },
      { index: 0 },
      { key: 'c' },
      { each: true },
      { key: 'd' },
    ]);
  });

  it('explains malformed paths', () => {
    expect(parsePath('a..b')).toBe('"a..b" is not a valid path: empty name before "."');
    expect(parsePath('a.')).toBe('"a." is not a valid path: it ends with "."');
    expect(parsePath('[0]')).toBe('"[0]" is not a valid path: it must start with a name');
    expect(parsePath('a[x]')).toBe(
      '"a[x]" is not a valid path at character 2: write a dot path like items[*].id',
    );
  });

  it('reads through [*], flattening nested lists and skipping missing members', () => {
    const cart = { items: [{ id: 1, tags: ['a'] }, { id: 2, tags: ['b', 'c'] }, { other: 3 }] };
    expect(getPath(cart, p('items[*].id'))).toEqual([1, 2]);
    expect(getPath(cart, p('items[*].tags[*]'))).toEqual(['a', 'b', 'c']);
    expect(getPath(cart, p('items[1].tags[0]'))).toBe('b');
    expect(getPath(cart, p('nothing.here'))).toBeUndefined();
  });

  it('projects with an allow tree, through arrays', () => {
    const v = {
      name: 'x',
      secret: 1,
      images: [
        { url: 'u1', size: 9 },
        { url: 'u2', size: 8 },
      ],
    };
    expect(project(v, allowTree([p('name'), p('images[*].url')]))).toEqual({
      name: 'x',
      images: [{ url: 'u1' }, { url: 'u2' }],
    });
  });

  it('deletes, sets, renames inside array elements and limits arrays', () => {
    const v: Record<string, unknown> = {
      items: [
        { productId: 1, x: 1 },
        { productId: 2, x: 2 },
      ],
      tags: [1, 2, 3],
    };
    deletePath(v, p('items[*].x'));
    applyRename(v, compileRename('items[*].productId', 'items[*].id') as Rename);
    setPath(v, p('meta.source'), 'web');
    limitArray(v, p('tags'), 2);
    expect(v).toEqual({ items: [{ id: 1 }, { id: 2 }], tags: [1, 2], meta: { source: 'web' } });
  });

  it('refuses a rename that would mix array elements', () => {
    expect(compileRename('items[*].id', 'ids')).toBe(
      'cannot rename "items[*].id" to "ids": inside arrays both paths must share the prefix up to the last [*] (like items[*].a -> items[*].b)',
    );
  });
});
