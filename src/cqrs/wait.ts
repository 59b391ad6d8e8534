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
