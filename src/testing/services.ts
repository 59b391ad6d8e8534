import { connect } from 'node:net';

/**
 * Where the integration tier finds the real engines. Each URL can be pointed at your own
 * server with its TRELLIS_TEST_* variable; the defaults are the loopback services of the
 * development machines (see docs/stores.md).
 */
export const TEST_URLS = {
  postgres: process.env.TRELLIS_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test',
  redis: process.env.TRELLIS_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
  nats: process.env.TRELLIS_TEST_NATS_URL ?? 'nats://127.0.0.1:4222',
  etcd: process.env.TRELLIS_TEST_ETCD_URL ?? 'etcd://127.0.0.1:2379',
  /** An S3-compatible endpoint, credentials in the user info (s3rver's are S3RVER:S3RVER). */
  s3: process.env.TRELLIS_TEST_S3_URL ?? 'http://S3RVER:S3RVER@127.0.0.1:4568',
} as const;

export type TestService = keyof typeof TEST_URLS;

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  const defaults: Record<string, number> = {
    'postgres:': 5432,
    'redis:': 6379,
    'nats:': 4222,
    'etcd:': 2379,
    'http:': 80,
  };
  const port = Number(u.port || defaults[u.protocol] || 0);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname || '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * The URL of a real service for an integration test, or undefined (and a clear line on stderr)
 * when it cannot be reached. Under CI=true an unreachable service throws: CI must not go green
 * by skipping. Use with `describe.skipIf(!url)`.
 */
export async function serviceUrl(service: TestService): Promise<string | undefined> {
  const url = TEST_URLS[service];
  if (await reachable(url)) return url;
  // Credentials in a URL's user info are never printed.
  const shown = url.replace(/\/\/[^@/]*@/, '//***@');
  const what = `${service} is not reachable at ${shown} (set TRELLIS_TEST_${service.toUpperCase()}_URL)`;
  if (process.env.CI === 'true') throw new Error(`${what}: CI requires every integration service`);
  process.stderr.write(`integration tier: skipping ${service} tests: ${what}\n`);
  return undefined;
}
