import { TrellisError } from '../core/errors.js';

/** The error a decider throws to refuse a command (422 over HTTP). */
export function rejectCommand(reason: string, details?: Record<string, unknown>): TrellisError {
  return new TrellisError('TRELLIS_E_COMMAND_REJECTED', reason, {
    status: 422,
    ...(details ? { details } : {}),
  });
}
