import { request } from 'undici';
import { z } from 'zod';
import { duration } from '../core/units.js';

/**
 * Credentials the ambassador adds to every call of a remote, so the client holds none:
 * - `headers`: static values (API keys), written as `${NAME}` so the secret comes from the
 *   environment (or the secret store behind it), never the file;
 * - `oauth2`: an OAuth2 client-credentials token (RFC 6749 4.4), fetched, cached and refreshed
 *   `refreshBefore` its expiry, injected as `Authorization: Bearer …`.
 *
 * Refreshes are single-flight: however many calls need a token at once, one request goes to the
 * token endpoint and they all wait for it. While the endpoint is down, the cached token is used
 * until it expires; after that calls get a 503 problem, and the endpoint is asked again at most
 * once per `retryInterval`, so its recovery is not met by a stampede.
 */

export const credentialsSchema = z.strictObject({
  /** Static headers (an API key: `x-api-key: ${PAYMENTS_KEY}`). */
  headers: z.record(z.string(), z.string()).optional(),
  oauth2: z
    .strictObject({
      tokenUrl: z.url(),
      clientId: z.string().min(1),
      clientSecret: z.string().min(1),
      scope: z.string().optional(),
      /** Refresh this long before the token expires. */
      refreshBefore: duration().default(30_000),
      /** The token request's own deadline. */
      timeout: duration().default(5_000),
      /** After a failed refresh, wait this long before asking again. */
      retryInterval: duration().default(1_000),
    })
    .optional(),
});

export type CredentialsConfig = z.output<typeof credentialsSchema>;

/** No token could be had: the endpoint failed and the cached one (if any) expired. */
export class TokenUnavailable extends Error {}

interface Token {
  value: string;
  /** ms since the epoch. */
  expiresAt: number;
}

type Headers = Readonly<Record<string, string>>;

/**
 * The headers to add to a call: at once when they are at hand (static headers, a cached token
 * not yet due a refresh), so the common call waits for no promise; else a promise that rejects
 * with TokenUnavailable.
 */
export type CredentialSource = () => Headers | Promise<Headers>;

/** A credential source for a remote, or undefined when it has none. */
export function credentialSource(config: CredentialsConfig | undefined): CredentialSource | undefined {
  if (config === undefined || (config.headers === undefined && config.oauth2 === undefined)) return undefined;
  const fixed = config.headers ?? {};
  if (config.oauth2 === undefined) return () => fixed;
  const tokens = new TokenCache(config.oauth2);
  // One headers object per token, not per call.
  let last: { token: string; headers: Headers } | undefined;
  const headersOf = (token: string): Headers => {
    if (last?.token !== token) last = { token, headers: { ...fixed, authorization: `Bearer ${token}` } };
    return last.headers;
  };
  return () => {
    const fresh = tokens.fresh();
    return fresh !== undefined ? headersOf(fresh) : tokens.get().then(headersOf);
  };
}

/** The header names (lower case) a remote's credentials set: the client's own are dropped. */
export function credentialNames(config: CredentialsConfig | undefined): string[] {
  const names = Object.keys(config?.headers ?? {}).map((n) => n.toLowerCase());
  if (config?.oauth2 !== undefined) names.push('authorization');
  return names;
}

/** The cached client-credentials token with single-flight refresh. */
export class TokenCache {
  private token: Token | undefined;
  private inFlight: Promise<Token> | undefined;
  private failedAt = 0;
  /** Token requests sent (for tests and the admin view). */
  fetches = 0;

  constructor(
    private readonly config: NonNullable<CredentialsConfig['oauth2']>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The cached token when it is not yet due a refresh (nothing to wait for), else undefined. */
  fresh(): string | undefined {
    const token = this.token;
    return token !== undefined && this.now() < token.expiresAt - this.config.refreshBefore
      ? token.value
      : undefined;
  }

  /** A token valid now; refreshes ahead of expiry, in the background while the old one is good. */
  async get(): Promise<string> {
    const now = this.now();
    const token = this.token;
    if (token !== undefined && now < token.expiresAt - this.config.refreshBefore) return token.value;
    const valid = token !== undefined && now < token.expiresAt;
    const mayAsk = now - this.failedAt >= this.config.retryInterval;
    if (mayAsk || this.inFlight !== undefined) {
      const refresh = this.refresh();
      // Still valid: the call goes on with it, the refresh happens beside it.
      if (valid) {
        refresh.catch(() => {});
        return token.value;
      }
      try {
        return (await refresh).value;
      } catch (err) {
        throw new TokenUnavailable(`the token endpoint failed: ${(err as Error).message}`);
      }
    }
    if (valid) return token.value;
    throw new TokenUnavailable('the token endpoint failed recently and the cached token expired');
  }

  private refresh(): Promise<Token> {
    this.inFlight ??= this.fetch().then(
      (t) => {
        this.token = t;
        this.inFlight = undefined;
        return t;
      },
      (err: unknown) => {
        this.failedAt = this.now();
        this.inFlight = undefined;
        throw err;
      },
    );
    return this.inFlight;
  }

  private async fetch(): Promise<Token> {
    const c = this.config;
    this.fetches++;
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (c.scope !== undefined) form.set('scope', c.scope);
    const res = await request(c.tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        // RFC 6749 2.3.1: client_secret_basic, names and secrets form-encoded first.
        authorization: `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString('base64')}`,
      },
      body: form.toString(),
      signal: AbortSignal.timeout(c.timeout),
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
    let body: { access_token?: unknown; expires_in?: unknown };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error('the answer is not JSON');
    }
    if (typeof body.access_token !== 'string' || body.access_token === '') throw new Error('no access_token');
    // Without expires_in the token is kept an hour: the remote's 401 would be the only other hint.
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 3600;
    return { value: body.access_token, expiresAt: this.now() + seconds * 1000 };
  }
}
