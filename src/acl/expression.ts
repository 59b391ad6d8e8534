import jsonata from 'jsonata';
import { TrellisError } from '../core/errors.js';

/**
 * JSONata expressions for what field mappings cannot say. Each is compiled once, at load, and
 * evaluated under limits: a time budget, a nesting depth (runaway recursion) and a cap on the
 * size of any intermediate string or list (an expression that builds a huge value is stopped
 * before it takes the process's memory).
 */

export interface ExpressionLimits {
  /** Milliseconds one evaluation may take. */
  timeoutMs: number;
  /** How deep evaluation may nest (recursion). */
  maxDepth: number;
  /** Longest string or list any step may produce. */
  maxLength: number;
}

export const DEFAULT_EXPRESSION_LIMITS: ExpressionLimits = {
  timeoutMs: 200,
  maxDepth: 500,
  maxLength: 1_000_000,
};

/** A compiled expression: evaluates against an input with variables bound (`$name`). */
export interface CompiledExpression {
  readonly text: string;
  evaluate(input: unknown, bindings?: Record<string, unknown>): Promise<unknown>;
}

/** The budget of one evaluation, found by the hooks through the evaluation's own environment. */
interface Budget {
  deadline: number;
  depth: number;
  limits: ExpressionLimits;
}

// Bound per evaluation, so concurrent evaluations of one expression keep separate budgets (the
// hooks are per expression, and JSONata evaluation is async, so evaluations interleave).
const BUDGET = '__trellisBudget';

interface Environment {
  lookup(name: string): unknown;
  isParallelCall?: boolean;
}

interface JsonataFailure {
  code?: string;
  message?: string;
  position?: number;
}

function overrun(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_ACL_EXPRESSION_LIMIT', message);
}

function check(budget: Budget, result?: unknown): void {
  if (budget.depth > budget.limits.maxDepth) {
    throw overrun(`the expression nested deeper than ${budget.limits.maxDepth} steps (runaway recursion?)`);
  }
  if (performance.now() > budget.deadline) {
    throw overrun(`the expression ran longer than ${budget.limits.timeoutMs} ms`);
  }
  if ((typeof result === 'string' || Array.isArray(result)) && result.length > budget.limits.maxLength) {
    throw overrun(`the expression built a value longer than ${budget.limits.maxLength}`);
  }
}

/** Compiles a JSONata expression; a syntax error is a TrellisError naming the position. */
export function compileExpression(
  text: string,
  limits: ExpressionLimits = DEFAULT_EXPRESSION_LIMITS,
): CompiledExpression {
  let expr: jsonata.Expression;
  try {
    expr = jsonata(text);
  } catch (err) {
    const e = err as JsonataFailure;
    throw new TrellisError(
      'TRELLIS_E_ACL_EXPRESSION_INVALID',
      `the JSONata expression does not compile${e.position === undefined ? '' : ` at character ${e.position}`}: ${e.message ?? String(err)}`,
      { cause: err },
    );
  }
  expr.assign(
    Symbol.for('jsonata.__evaluate_entry') as unknown as string,
    (_e: unknown, _i: unknown, env: Environment) => {
      if (env.isParallelCall) return;
      const budget = env.lookup(BUDGET) as Budget | undefined;
      if (budget === undefined) return;
      budget.depth++;
      check(budget);
    },
  );
  expr.assign(
    Symbol.for('jsonata.__evaluate_exit') as unknown as string,
    (_e: unknown, _i: unknown, env: Environment, result: unknown) => {
      if (env.isParallelCall) return;
      const budget = env.lookup(BUDGET) as Budget | undefined;
      if (budget === undefined) return;
      budget.depth--;
      check(budget, result);
    },
  );
  return {
    text,
    async evaluate(input, bindings = {}) {
      const budget: Budget = { deadline: performance.now() + limits.timeoutMs, depth: 0, limits };
      try {
        return await expr.evaluate(input, { ...bindings, [BUDGET]: budget });
      } catch (err) {
        if (err instanceof TrellisError) throw err;
        const e = err as JsonataFailure;
        // JSONata reports its own stack overflow for deep recursion before our depth check.
        if (e instanceof RangeError) throw overrun('the expression recursed too deeply');
        throw new TrellisError(
          'TRELLIS_E_ACL_EXPRESSION_FAILED',
          `the JSONata expression failed${e.code === undefined ? '' : ` (${e.code})`}: ${e.message ?? String(err)}`,
          { cause: err },
        );
      }
    },
  };
}
