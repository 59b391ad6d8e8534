import { describe, expect, it } from 'vitest';
import { maskSecrets } from './mask.js';

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
});
