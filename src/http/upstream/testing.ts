import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent } from 'undici';
import { UpstreamNode } from './upstream.js';

/** Upstream nodes for balancer tests: `nodes({ a: 5, b: 1 })`; no connection is ever opened. */
export function nodes(weights: Record<string, number>, clock: () => number = Date.now): UpstreamNode[] {
  const dispatcher = new Agent();
  return Object.entries(weights).map(
    ([name, weight]) => new UpstreamNode(new URL(`http://${name}.test`), weight, dispatcher, clock),
  );
}

/** The host names of a list of picks, for readable assertions. */
export const names = (picked: readonly (UpstreamNode | undefined)[]): string[] =>
  picked.map((u) => u?.origin.hostname.replace('.test', '') ?? '-');

/** How many of `picks` went to each upstream, by host name. */
export function counts(picked: readonly (UpstreamNode | undefined)[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names(picked)) out[name] = (out[name] ?? 0) + 1;
  return out;
}

/** A loopback origin for tests; `handler` may be swapped while it runs. */
export interface TestOrigin {
  readonly url: string;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Requests seen so far, by path. */
  readonly seen: string[];
  close(): Promise<void>;
}

export async function startOrigin(
  handler: TestOrigin['handler'] = (_req, res) => res.end('ok'),
): Promise<TestOrigin> {
  const origin = {
    handler,
    seen: [] as string[],
  } as { -readonly [K in keyof TestOrigin]: TestOrigin[K] };
  const server = createServer((req, res) => {
    origin.seen.push(req.url ?? '');
    origin.handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  origin.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return origin;
}

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  timeoutMs = 5_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
