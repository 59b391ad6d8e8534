import { randomUUID } from 'node:crypto';

// A client's id is kept only when it is short and plain, so it cannot inject into logs or
// headers; otherwise a fresh UUID is generated.
const SANE_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** The request id to use: the client's `x-request-id` when sane, else a new UUID v4. */
export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === 'string' && SANE_ID.test(header) ? header : randomUUID();
}
