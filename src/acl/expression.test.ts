import { describe, expect, it } from 'vitest';
import { isTrellisError } from '../core/errors.js';
import { compileExpression } from './expression.js';

describe('JSONata expressions run under limits', () => {
  it('evaluates with context bindings', async () => {
    const e = compileExpression('{ "sku": $params.sku, "total": $sum(lines.(qty * price)) }');
    const out = await e.evaluate(
      {
        lines: [
          { qty: 2, price: 3 },
          { qty: 1, price: 4 },
        ],
      },
      { params: { sku: 'A1' } },
    );
    expect(JSON.parse(JSON.stringify(out))).toEqual({ sku: 'A1', total: 10 });
  });

  it('stops an endless recursion by its time or depth limit', async () => {
    const e = compileExpression('($f := function($x){ $f($x + 1) }; $f(0))', {
      timeoutMs: 100,
      maxDepth: 200,
      maxLength: 1000,
    });
    const err = await e.evaluate({}).catch((x: unknown) => x);
    expect(isTrellisError(err, 'TRELLIS_E_ACL_EXPRESSION_LIMIT')).toBe(true);
  });

  it('stops an expression that builds a huge value', async () => {
    const e = compileExpression('$join([1..20000].("xxxxxxxxxx"))', {
      timeoutMs: 5000,
      maxDepth: 500,
      maxLength: 10_000,
    });
    const err = (await e.evaluate({}).catch((x: unknown) => x)) as Error;
    expect(isTrellisError(err, 'TRELLIS_E_ACL_EXPRESSION_LIMIT')).toBe(true);
    expect(err.message).toContain('longer than 10000');
  });

  it('keeps concurrent evaluations on their own budgets', async () => {
    const e = compileExpression('$count([1..2000].($ * 2))', {
      timeoutMs: 2000,
      maxDepth: 500,
      maxLength: 100_000,
    });
    const results = await Promise.all(Array.from({ length: 5 }, () => e.evaluate({})));
    expect(results).toEqual([2000, 2000, 2000, 2000, 2000]);
  });

  it('reports syntax and runtime errors with codes', async () => {
    expect(() => compileExpression('{ "a": ')).toThrow(/does not compile at character/);
    const e = compileExpression('$number("abc")');
    const err = await e.evaluate({}).catch((x: unknown) => x);
    expect(isTrellisError(err, 'TRELLIS_E_ACL_EXPRESSION_FAILED')).toBe(true);
  });
});
