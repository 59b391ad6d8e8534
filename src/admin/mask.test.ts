import { describe, expect, it } from 'vitest';
import { maskSecrets, maskString } from './mask.js';

describe('maskSecrets', () => {
  it('hides values under secret-looking keys and passwords in URLs, keeps the rest', () => {
    expect(
      maskSecrets({
        stores: { shared: 'redis://app:s3cret@redis:6379/0', plain: 'redis://redis:6379' },
        middlewares: {
          auth: { jwt: { secret: 'xyz', audience: 'shop' } },
          api: { apiKey: { keys: ['k1', 'k2'], header: 'x-api-key' } },
          basic: { basicAuth: { users: { ann: { password: 'pw' } } } },
        },
        listen: { port: 8080 },
        token: 'abc',
      }),
    ).toEqual({
      stores: { shared: 'redis://app:***@redis:6379/0', plain: 'redis://redis:6379' },
      middlewares: {
        auth: { jwt: { secret: '***', audience: 'shop' } },
        api: { apiKey: '***' },
        basic: { basicAuth: { users: { ann: { password: '***' } } } },
      },
      listen: { port: 8080 },
      token: '***',
    });
  });

  const jwt = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhbm4iLCJhdWQiOiJzaG9wIn0.c2lnbmF0dXJlLWJ5dGVz';
  const basic = Buffer.from('ann:hunter2').toString('base64');
  // [what a configuration holds, what /admin/config may show]: the secret part must be gone.
  const table: [string, string, string][] = [
    ['password with @ in URL user-info', 'redis://app:p@ss@cache:6379/0', 'redis://app:***@cache:6379/0'],
    ['password with two @', 'postgres://app:a@b@c@db:5432/app', 'postgres://app:***@db:5432/app'],
    ['plain URL password', 'postgres://app:s3cret@db/app', 'postgres://app:***@db/app'],
    ['empty user, password only', 'redis://:s3cret@cache:6379', 'redis://:***@cache:6379'],
    [
      'URL inside a longer string',
      'DATABASE_URL=postgres://u:pw@db/x ok',
      'DATABASE_URL=postgres://u:***@db/x ok',
    ],
    ['Bearer header value', 'Bearer abc.def-ghi', 'Bearer ***'],
    ['lower-case bearer', 'bearer abc123', 'bearer ***'],
    ['Bearer JWT', `Bearer ${jwt}`, 'Bearer ***'],
    ['Basic credentials', `Basic ${basic}`, 'Basic ***'],
    ['Token scheme', 'Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b', 'Token ***'],
    ['Digest', 'Digest username="ann", response="6629fae4"', 'Digest ***'],
    [
      'access_token query parameter',
      'https://api.example.com/v1?access_token=abc123&x=1',
      'https://api.example.com/v1?access_token=***&x=1',
    ],
    [
      'api_key query parameter',
      'https://maps.example.com/q?api_key=AIzaSyD-1234&lang=en',
      'https://maps.example.com/q?api_key=***&lang=en',
    ],
    ['apikey query parameter', 'https://x.example/?apikey=k1', 'https://x.example/?apikey=***'],
    [
      'token query parameter',
      'wss://push.example.com/socket?token=t0k3n',
      'wss://push.example.com/socket?token=***',
    ],
    ['key query parameter', 'https://g.example.com/api?key=AIzaSy123', 'https://g.example.com/api?key=***'],
    [
      'client_secret parameter',
      'https://id.example/token?client_id=web&client_secret=shh',
      'https://id.example/token?client_id=web&client_secret=***',
    ],
    [
      'AWS presigned URL',
      'https://b.s3.amazonaws.com/o?X-Amz-Credential=AKID%2F1&X-Amz-Signature=ab12',
      'https://b.s3.amazonaws.com/o?X-Amz-Credential=***&X-Amz-Signature=***',
    ],
    [
      'refresh_token in a fragment-less URL',
      'https://id.example/cb?refresh_token=r1#done',
      'https://id.example/cb?refresh_token=***#done',
    ],
    ['password query parameter', 'amqp://broker/vhost?password=pw1', 'amqp://broker/vhost?password=***'],
    ['bare JWT', jwt, '***'],
    ['GitHub token', 'ghp_abcdefghijklmnopqrstuvwxyz0123456789', '***'],
    ['Slack token', 'xoxb-1234567890-abcdefghij', '***'],
    ['Stripe secret key', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc', '***'],
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE', '***'],
    ['PEM private key', '-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----', '***'],
  ];

  it.each(table)('masks by value shape: %s', (_what, secret, shown) => {
    expect(maskString(secret)).toBe(shown);
    // Under an innocent key and inside a list, the same.
    expect(maskSecrets({ upstream: secret, headers: [secret] })).toEqual({
      upstream: shown,
      headers: [shown],
    });
  });

  it('has at least 20 secret spellings in its table', () => {
    expect(table.length).toBeGreaterThanOrEqual(20);
  });

  it.each([
    'redis://cache:6379/0',
    'https://host:8080/users/@me',
    'https://example.com/search?q=token&page=2',
    'Basic auth is configured per route',
    'a token bucket of 100',
    'jwks: http://127.0.0.1:9000/.well-known/jwks.json',
  ])('keeps what is not a secret: %s', (plain) => {
    expect(maskString(plain)).toBe(plain);
  });

  it('masks by key: header maps, passphrases, private keys, signatures', () => {
    expect(
      maskSecrets({
        headers: { Authorization: 'x', 'X-Api-Key': 'y', 'x-request-id': 'r' },
        tls: { passphrase: 'p', privateKey: 'k', cert: './cert.pem' },
        webhook: { signature: 's' },
      }),
    ).toEqual({
      headers: { Authorization: '***', 'X-Api-Key': '***', 'x-request-id': 'r' },
      tls: { passphrase: '***', privateKey: '***', cert: './cert.pem' },
      webhook: { signature: '***' },
    });
  });
});
