import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TrellisError } from '../../core/errors.js';
import { RemoteKeySet, type RemoteKeySetOptions } from './remote.js';

/** Where verification keys come from; exactly one is set (checked by the schema). */
export interface KeySource {
  jwksUrl?: string;
  jwksFile?: string;
  jwks?: { keys: unknown[] };
  secret?: string;
}

/** What a remote key set needs besides its URL. */
export type RemoteOptions = Omit<RemoteKeySetOptions, 'url'>;

/**
 * A key resolver for jose: the secret's bytes, a remote set (see `RemoteKeySet`: cooldown on
 * every fetch, last good keys kept through outages), or a local set from a file or inline.
 */
export function keyResolver(
  src: KeySource,
  baseDir: string,
  remote: RemoteOptions,
): JWTVerifyGetKey | Uint8Array | RemoteKeySet {
  if (src.secret !== undefined) return new TextEncoder().encode(src.secret);
  if (src.jwksUrl !== undefined) return new RemoteKeySet({ ...remote, url: src.jwksUrl });
  let set: unknown = src.jwks;
  if (src.jwksFile !== undefined) {
    const path = resolve(baseDir, src.jwksFile);
    try {
      set = JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new TrellisError(
        'TRELLIS_E_JWT_KEYS_UNREADABLE',
        `cannot read the JWKS file ${path}: check the path`,
        {
          cause: err,
        },
      );
    }
  }
  try {
    return createLocalJWKSet(set as JSONWebKeySet);
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_JWT_KEYS_UNREADABLE',
      'the JWKS is not a valid key set: give {"keys": [...]}',
      {
        cause: err,
      },
    );
  }
}
