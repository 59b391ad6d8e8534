import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { z } from 'zod';
import { compileJsonSchema } from '../config/validation.js';
import { formatPath } from '../core/config.js';
import { messageOf, TrellisError } from '../core/errors.js';

/**
 * Contracts of both sides: a JSON Schema (inline, or a file next to the configuration) or a zod
 * schema from a code translator. A value that breaks its contract yields every violation with
 * its exact path (`items[2].qty: expected number`), never just "invalid".
 */

export interface ContractIssue {
  path: string;
  message: string;
}

export interface Contract {
  check(value: unknown): ContractIssue[];
}

/** A contract from a zod schema. */
export function zodContract(schema: z.ZodType): Contract {
  return {
    check(value) {
      const r = schema.safeParse(value);
      if (r.success) return [];
      return r.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => ({
              path: formatPath([...(i.path as PropertyKey[]), k]),
              message: `unknown field "${k}"`,
            }))
          : [{ path: formatPath(i.path as PropertyKey[]) || '(body)', message: i.message }],
      );
    },
  };
}

/** Loads a contract written in a translation: a JSON Schema object, or the path of a JSON file. */
export function loadContract(
  spec: string | boolean | Record<string, unknown>,
  baseDir: string,
  what: string,
): Contract {
  let schema: unknown = spec;
  if (typeof spec === 'string') {
    const file = resolve(baseDir, spec);
    try {
      schema = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new TrellisError(
        'TRELLIS_E_ACL_CONTRACT_UNREADABLE',
        `${what}: cannot read the JSON Schema ${file}: ${messageOf(err)}`,
        {
          cause: err,
        },
      );
    }
  }
  try {
    return zodContract(compileJsonSchema(schema));
  } catch (err) {
    throw new TrellisError('TRELLIS_E_ACL_CONTRACT_UNREADABLE', `${what}: ${messageOf(err)}`, { cause: err });
  }
}
