import { TrellisError } from '../core/errors.js';

/**
 * Read-your-writes: resolves once `current()` (a projection's checkpoint) reaches `position`
 * (from an append), polling with a short backoff; throws TRELLIS_E_PROJECTION_TIMEOUT after
 * `timeoutMs` so a caller can answer "accepted, not yet visible" instead of hanging.
 */
export async function waitForPosition(
  current: () => Promise<number>,
  position: number,
  options: { timeoutMs?: number; signal?: AbortSignal; name?: string } = {},
): Promise<number> {
  // An undefined position (a result's field misspelt, a query string not parsed) would otherwise
  // poll until the timeout and answer "not yet NaN".
  if (typeof position !== 'number' || !Number.isSafeInteger(position) || position < 0) {
    throw new TrellisError(
      'TRELLIS_E_PROJECTION_POSITION_INVALID',
      `cannot wait for position ${typeof position === 'string' ? JSON.stringify(position) : String(position)}${options.name ? ` of projection "${options.name}"` : ''}: pass the whole number >= 0 an append returned (its \`position\`)`,
      { status: 400 },
    );
  }
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  let delay = 2;
  for (;;) {
    const at = await current();
    if (at >= position) return at;
    if (Date.now() >= deadline || options.signal?.aborted) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_TIMEOUT',
        `projection${options.name ? ` "${options.name}"` : ''} is at position ${at}, not yet ${position}: is it running? retry or raise the timeout`,
        { status: 504, details: { position: at, waitingFor: position } },
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(1, deadline - Date.now()))));
    delay = Math.min(delay * 2, 100);
  }
}
