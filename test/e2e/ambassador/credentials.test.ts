import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AmbassadorProcess,
  type Origin,
  startAmbassadorCli,
  startOrigin,
  type TempDir,
  tempDir,
  waitUntil,
} from '../support/index.js';

const run = promisify(execFile);

// 100 concurrent calls from Python threads; prints the statuses and the bodies seen.
const PYTHON_BURST = `
import json, sys, threading, urllib.request, urllib.error
url, n = sys.argv[1], int(sys.argv[2])
out, lock = {}, threading.Lock()
barrier = threading.Barrier(n)
def call():
    barrier.wait()
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            code, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        code, body = e.code, e.read().decode()
    with lock:
        out.setdefault(str(code), []).append(body)
ts = [threading.Thread(target=call) for _ in range(n)]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps(out))
`;

async function burst(url: string, n: number): Promise<Record<string, string[]>> {
  const { stdout } = await run('python3', ['-c', PYTHON_BURST, url, String(n)]);
  return JSON.parse(stdout) as Record<string, string[]>;
}

// OAuth2 client credentials through the real CLI: single-flight, cached through an outage, 503 after.
describe('trellis ambassador: credentials', () => {
  let dir: TempDir;
  let amb: AmbassadorProcess;
  let ports: Record<string, number>;
  let tokens: Origin;
  let api: Origin;
  const token = { up: true, issued: 0, expiresIn: 3 };

  beforeAll(async () => {
    dir = tempDir();
    tokens = await startOrigin('tokens', (req, res) => {
      if (!token.up || req.body.indexOf('grant_type=client_credentials') < 0) {
        res.writeHead(503).end();
        return;
      }
      token.issued++;
      // Slow enough that a burst of calls all find the refresh in flight.
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            access_token: `t${token.issued}`,
            expires_in: token.expiresIn,
            token_type: 'Bearer',
          }),
        );
      }, 100);
    });
    api = await startOrigin('api', (req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(String(req.headers.authorization));
    });
    const file = `${dir.path}/ambassador.yaml`;
    writeFileSync(
      file,
      `remotes:
  api:
    listen: { port: 0 }
    service: { upstreams: ['${api.url}'] }
    credentials:
      headers: { x-api-key: '\${API_KEY}' }
      oauth2:
        tokenUrl: ${tokens.url}/token
        clientId: ambassador
        clientSecret: '\${CLIENT_SECRET}'
        refreshBefore: 1s
        retryInterval: 200ms
`,
    );
    amb = await startAmbassadorCli(file, {
      env: { API_KEY: 'k-123', CLIENT_SECRET: 's3cret' },
    });
    ports = amb.ports;
  }, 30_000);

  afterAll(async () => {
    await amb?.stop();
    await Promise.all([tokens?.close(), api?.close()]);
    dir?.cleanup();
  });

  const url = () => `http://127.0.0.1:${ports.api}/v1/x`;

  it('100 concurrent calls cause one token request, and every call carries the token and the key', async () => {
    const out = await burst(url(), 100);
    expect(Object.keys(out)).toEqual(['200']);
    expect(new Set(out['200'])).toEqual(new Set(['Bearer t1']));
    expect(token.issued).toBe(1);
    const seen = api.requests.at(-1)!;
    expect(seen.headers['x-api-key']).toBe('k-123');
    expect(tokens.requests[0]!.headers.authorization).toBe(
      `Basic ${Buffer.from('ambassador:s3cret').toString('base64')}`,
    );
  }, 30_000);

  it('token endpoint down: the cached token until it expires, then a 503 problem; one refresh on recovery', async () => {
    token.up = false;
    // t1 expires 3 s after issue; until then calls still pass with it.
    const during = await fetch(url());
    expect(during.status).toBe(200);
    expect(await during.text()).toBe('Bearer t1');
    const refused = await waitUntil(
      async () => {
        const r = await fetch(url());
        return r.status === 503 ? r : undefined;
      },
      'the cached token to expire',
      10_000,
    );
    const problem = (await refused.json()) as { code: string };
    expect(problem.code).toBe('TRELLIS_E_TOKEN_UNAVAILABLE');
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    token.up = true;
    token.expiresIn = 60;
    const before = token.issued;
    // Wait out retryInterval so the next burst may ask; then 100 calls at once, one refresh.
    await new Promise((r) => setTimeout(r, 250));
    const out = await burst(url(), 100);
    expect(Object.keys(out)).toEqual(['200']);
    expect(token.issued - before).toBe(1);
  }, 30_000);
});
