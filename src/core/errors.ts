/**
 * One error class for the whole project. Every error a user can meet carries a stable code
 * (`TRELLIS_E_*`), a message that says what to do, and the underlying `cause`.
 *
 * Codes are plain string literals at the throw site rather than one central enum: the parts of
 * Trellis are built side by side, and a central list would be a merge hotspot. What keeps them
 * honest is `docs/errors.md` plus `errors.test.ts`, which fails when a code used in `src/` is
 * missing from the docs (or the docs list a code nobody throws).
 */
export type TrellisErrorCode = `TRELLIS_E_${string}`;

export interface TrellisErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (never secrets); shown in problem details as extensions. */
  details?: Record<string, unknown>;
  /** Suggested HTTP status when this error reaches an HTTP edge. */
  status?: number;
}

export class TrellisError extends Error {
  override readonly name = 'TrellisError';
  readonly code: TrellisErrorCode;
  readonly details: Record<string, unknown> | undefined;
  readonly status: number | undefined;

  constructor(code: TrellisErrorCode, message: string, options: TrellisErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
    this.status = options.status;
  }
}

export function isTrellisError(value: unknown, code?: TrellisErrorCode): value is TrellisError {
  return value instanceof TrellisError && (code === undefined || value.code === code);
}

/** The message of anything thrown, without a stack. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
