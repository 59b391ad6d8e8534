/**
 * A legacy payload that its format cannot read (malformed XML, a CSV row with the wrong number
 * of fields, a fixed-width record of the wrong length). The handler answers 502 for a legacy
 * answer and 400 for a modern request; the message is logged, never sent to the client.
 */
export class FormatError extends Error {
  override readonly name = 'FormatError';
}

/**
 * A fault the legacy system reported (a SOAP Fault, an error code inside a 200). `code` and
 * `message` are the legacy system's words, kept for the log and for `faults:` rules that map
 * them to a modern answer; they never reach the client as they are.
 */
export class LegacyFault extends Error {
  override readonly name = 'LegacyFault';
  constructor(
    readonly code: string,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}
