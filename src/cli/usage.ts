import { TrellisError } from '../core/errors.js';

/** A mistake on the command line: printed with the command's usage, exit code 2. */
export function usageError(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_USAGE', message, { details: { exitCode: 2 } });
}
