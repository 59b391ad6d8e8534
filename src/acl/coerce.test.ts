import { describe, expect, it } from 'vitest';
import { CoercionError, type CoercionOptions, compileCoercion } from './coerce.js';

const from = (o: CoercionOptions, v: unknown) => compileCoercion(o, 'fromLegacy')(v);
const to = (o: CoercionOptions, v: unknown) => compileCoercion(o, 'toLegacy')(v);

describe('coercions work both ways from one rule', () => {
  it.each([
    [{ type: 'date', format: 'YYYYMMDD' }, '20241231', '2024-12-31', '20241231'],
    [{ type: 'date', format: 'DD.MM.YYYY' }, '29.02.2024', '2024-02-29', '29.02.2024'],
    [
      { type: 'datetime', format: 'YYYYMMDDHHmmss', offset: '+01:00' },
      '20240101003000',
      '2023-12-31T23:30:00.000Z',
      '20240101003000',
    ],
    [{ type: 'decimal', decimalSeparator: ',', scale: 2 }, '12,50', 12.5, '12,50'],
    [{ type: 'decimal', implied: true, scale: 2 }, '001250', 12.5, '1250'],
    [{ type: 'integer' }, ' 0042 ', 42, '42'],
    [{ type: 'boolean' }, 'Y', true, 'true'],
    [{ type: 'boolean', true: ['J'], false: ['N'] }, 'N', false, 'N'],
    [{ type: 'string' }, 'ACME      ', 'ACME', 'ACME'],
  ] as [CoercionOptions, string, unknown, string][])('%o: %s -> %o -> %s', (o, legacy, modern, written) => {
    expect(from(o, legacy)).toEqual(modern);
    expect(to(o, modern)).toBe(written);
  });

  it.each([
    [{ type: 'date', format: 'YYYYMMDD' }, '20240230', 'not a real date'],
    [{ type: 'date', format: 'YYYYMMDD' }, '2024-12-31', 'does not match'],
    [{ type: 'integer' }, '12.5', 'not a whole number'],
    [{ type: 'integer' }, '99999999999999999999', 'too large'],
    [{ type: 'number' }, 'abc', 'not a number'],
    [{ type: 'decimal', decimalSeparator: ',' }, '12.50', 'not a decimal'],
    [{ type: 'boolean' }, 'maybe', 'not one of the boolean spellings'],
    [{ type: 'datetime', format: 'YYYYMMDDHHmmss' }, '20241231246000', 'not a real date'],
  ] as [CoercionOptions, string, string][])('refuses %o %s instead of guessing', (o, legacy, message) => {
    expect(() => from(o, legacy)).toThrow(CoercionError);
    expect(() => from(o, legacy)).toThrow(message);
  });

  it('refuses modern values that are not in the modern form', () => {
    expect(() => to({ type: 'date', format: 'YYYYMMDD' }, '31.12.2024')).toThrow('not a date like');
    expect(() => to({ type: 'boolean' }, 'yes')).toThrow('expected true or false');
    expect(() => to({ type: 'string' }, { a: 1 })).toThrow('expected a text value');
  });

  it('an implied decimal without a scale is a load error', () => {
    expect(() => compileCoercion({ type: 'decimal', implied: true }, 'fromLegacy')).toThrow('needs a scale');
  });
});
