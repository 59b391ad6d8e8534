import { describe, expect, it } from 'vitest';
import { DEFAULT_EXPRESSION_LIMITS } from './expression.js';
import { compileMapping, MappingError, type MappingInput, mappingSchema } from './mapping.js';

const tables = { status: { A: 'active', D: 'discontinued' } };
const compile = (m: MappingInput, direction: 'toLegacy' | 'fromLegacy' = 'fromLegacy') =>
  compileMapping(mappingSchema.parse(m), { direction, tables, limits: DEFAULT_EXPRESSION_LIMITS });

describe('field mappings', () => {
  it('renames, nests, coerces, looks up, defaults and maps lists', async () => {
    const m = compile({
      sku: 'Sku',
      'stock.onHand': { from: 'Qty', type: 'integer' },
      'stock.restockOn': { from: 'Next', type: 'date', format: 'YYYYMMDD' },
      status: { from: 'St', lookup: 'status', default: 'unknown' },
      source: { const: 'warehouse' },
      requested: '$request.params.sku',
      bins: { each: 'Bins.Bin', map: { id: 'Id', count: { from: 'N', type: 'integer' } } },
      total: { expr: '$sum(Bins.Bin.$number(N))' },
    });
    const out = await m(
      {
        Sku: 'A1',
        Qty: '0007',
        Next: '20250102',
        St: 'X',
        Bins: {
          Bin: [
            { Id: 'b1', N: '3' },
            { Id: 'b2', N: '4' },
          ],
        },
      },
      { request: { params: { sku: 'A1' } } },
    );
    expect(out).toEqual({
      sku: 'A1',
      stock: { onHand: 7, restockOn: '2025-01-02' },
      status: 'unknown',
      source: 'warehouse',
      requested: 'A1',
      bins: [
        { id: 'b1', count: 3 },
        { id: 'b2', count: 4 },
      ],
      total: 7,
    });
  });

  it('reads code tables backwards going to the legacy side', async () => {
    const m = compile(
      { 'w:Status': { from: 'status', lookup: 'status' }, 'w:Sku': '$params.sku' },
      'toLegacy',
    );
    expect(await m({ status: 'discontinued' }, { params: { sku: 'Z9' } })).toEqual({
      'w:Status': 'D',
      'w:Sku': 'Z9',
    });
  });

  it('names the target and the source of a value it cannot use', async () => {
    const m = compile({ items: { each: 'L', map: { qty: { from: 'Q', type: 'integer' } } } });
    const err = (await m({ L: [{ Q: '1' }, { Q: 'x' }] }, {}).catch((e: unknown) => e)) as MappingError;
    expect(err).toBeInstanceOf(MappingError);
    expect(err.message).toBe('items[1].qty (from Q): "x" is not a whole number');
  });

  it('refuses a single element where a list is expected (no silent fallback)', async () => {
    const m = compile({ bins: { each: 'Bins.Bin', map: { id: 'Id' } } });
    await expect(m({ Bins: { Bin: { Id: 'b1' } } }, {})).rejects.toThrow(
      'declare the element under xml.arrays',
    );
  });

  it('treats a required missing value as an error and an optional one as absent', async () => {
    const m = compile({ a: { from: 'A', required: true }, b: { from: 'B', type: 'integer' } });
    await expect(m({}, {})).rejects.toThrow('a (from A): is required but missing');
    expect(await compile({ b: { from: 'B', type: 'integer' } })({ B: '' }, {})).toEqual({});
  });

  it('validates rules at load with clear messages', () => {
    expect(() => mappingSchema.parse({ a: { from: 'x', const: 1 } })).toThrow('not from and const');
    expect(() => mappingSchema.parse({ a: { each: 'x' } })).toThrow('each and map go together');
    expect(() => compile({ a: { from: 'x', lookup: 'nope' } })).toThrow('unknown code table "nope"');
    expect(() => compile({ a: 'x..y' })).toThrow('mapping "a"');
    expect(() =>
      compileMapping(
        { a: { from: 'x', lookup: 't' } },
        { direction: 'toLegacy', tables: { t: { A: 1, B: 1 } }, limits: DEFAULT_EXPRESSION_LIMITS },
      ),
    ).toThrow('cannot be read backwards');
  });
});
