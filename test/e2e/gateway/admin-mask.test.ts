import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayProcess,
  type Origin,
  startGatewayCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

/**
 * /admin/config never shows a secret, whatever key it sits under: masking by value shape
 * (Bearer values, credential query parameters, URL passwords that contain '@').
 */
let dir: TempDir;
let gw: GatewayProcess;
let origin: Origin;

const SECRETS = ['p@ss-word-1', 'bearer-s3cret-2', 'query-token-3', 'api-key-4', 'basic-pw-5'];

beforeAll(async () => {
  dir = tempDir('trellis-admin-mask-');
  origin = await startOrigin('catalog');
  const basic = Buffer.from(`ann:${SECRETS[4]}`).toString('base64');
  gw = await startGatewayCli(
    join(dir.path, 'gateway.yaml'),
    `listen: { port: 0 }
stores:
  shared: redis://app:${SECRETS[0]}@127.0.0.1:6379
routes:
  - name: catalog
    match: { path: /catalog/* }
    middlewares: [upstream-auth]
    proxy: { service: catalog }
middlewares:
  upstream-auth:
    headers:
      request:
        set:
          x-upstream-auth: "Bearer ${SECRETS[1]}"
          x-forwarded-login: "Basic ${basic}"
          x-callback: "https://hooks.example.com/in?access_token=${SECRETS[2]}&api_key=${SECRETS[3]}"
services:
  catalog: { upstreams: [${origin.url}] }
`,
  );
});
afterAll(async () => {
  await gw?.stop();
  await origin?.close();
  dir?.cleanup();
});

describe('/admin/config masking', () => {
  it('masks secrets by their shape, keeping what helps a reader', async () => {
    const text = await (await fetch(`${gw.adminUrl}/admin/config`)).text();
    for (const secret of SECRETS) expect(text).not.toContain(secret);
    const { config } = JSON.parse(text) as {
      config: { stores: Record<string, string>; middlewares: Record<string, unknown> };
    };
    expect(config.stores.shared).toBe('redis://app:***@127.0.0.1:6379');
    expect(config.middlewares['upstream-auth']).toMatchObject({
      headers: {
        request: {
          set: {
            'x-upstream-auth': 'Bearer ***',
            'x-forwarded-login': 'Basic ***',
            'x-callback': 'https://hooks.example.com/in?access_token=***&api_key=***',
          },
        },
      },
    });
  });
});
