import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { TrellisError } from '../../core/errors.js';

/** Where verification keys come from; exactly one is set (checked by the schema). */
export interface KeySource {
  jwksUrl?: string;
  jwksFile?: string;
  jwks?: { keys: unknown[] };
  secret?: string;
}

export interface RemoteOptions {
  cooldown: number;
  cacheMaxAge: number;
  fetchTimeout: number;
}

/**
 * A key resolver for jose. Remote sets are cached by jose and refetched on an unknown `kid` at
 * most once per cooldown, so a flood of tokens with random kids cannot hammer the JWKS endpoint.
 */
export function keyResolver(
  src: KeySource,
  baseDir: string,
  remote: RemoteOptions,
): JWTVerifyGetKey | Uint8Array {
  if (src.secret !== undefined) return new TextEncoder().encode(src.secret);
  if (src.jwksUrl !== undefined) {
    return createRemoteJWKSet(new URL(src.jwksUrl), {
      cooldownDuration: remote.cooldown,
      cacheMaxAge: remote.cacheMaxAge,
      timeoutDuration: remote.fetchTimeout,
    });
  }
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
