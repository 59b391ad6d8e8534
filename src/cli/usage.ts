import { type ParseArgsConfig, parseArgs } from 'node:util';
import { TrellisError } from '../core/errors.js';

/** A mistake on the command line: printed with the command's usage, exit code 2. */
export function usageError(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_USAGE', message, { details: { exitCode: 2 } });
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Strict argument parsing for a command: an unknown flag or a missing value becomes a usage
 * error (printed with the command's usage), never a raw Node exception.
 */
export function parseCommandArgs<O extends Options, P extends boolean = true>(
  argv: string[],
  options: O,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: P; strict: true }>> {
  try {
    return parseArgs({
      args: argv,
      options,
      allowPositionals: (allowPositionals ?? true) as P,
      strict: true,
    });
  } catch (err) {
    throw usageError((err as Error).message);
  }
}
