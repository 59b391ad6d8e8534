import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

const scryptAsync = promisify(scrypt) as (
  password: string,
  salt: Buffer,
  keylen: number,
  options: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>;

/** `$scrypt$N=16384,r=8,p=1$<salt base64>$<hash base64>` (the PHC string layout). */
const FORMAT = /^\$scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Parses a stored password hash; undefined when it is not a scrypt PHC string. */
export function parsePasswordHash(s: string): ScryptHash | undefined {
  const m = FORMAT.exec(s);
  if (!m) return undefined;
  const N = Number(m[1]);
  // N must be a power of two above 1 for scrypt.
  if (N < 2 || (N & (N - 1)) !== 0) return undefined;
  return {
    N,
    r: Number(m[2]),
    p: Number(m[3]),
    salt: Buffer.from(m[4]!, 'base64'),
    hash: Buffer.from(m[5]!, 'base64'),
  };
}

function derive(password: string, h: Omit<ScryptHash, 'hash'>, length: number): Promise<Buffer> {
  return scryptAsync(password, h.salt, length, {
    N: h.N,
    r: h.r,
    p: h.p,
    maxmem: 256 * h.N * h.r + 1024 * 1024,
  });
}

/** Hashes a password for `basicAuth.users[].hash` (scrypt, random salt). */
export async function hashPassword(password: string, cost = { N: 16384, r: 8, p: 1 }): Promise<string> {
  const salt = randomBytes(16);
  const hash = await derive(password, { ...cost, salt }, 32);
  return `$scrypt$N=${cost.N},r=${cost.r},p=${cost.p}$${salt.toString('base64')}$${hash.toString('base64')}`;
}

/** Checks a password against a parsed hash, in constant time for a given hash. */
export async function verifyPassword(password: string, h: ScryptHash): Promise<boolean> {
  const got = await derive(password, h, h.hash.length);
  return timingSafeEqual(got, h.hash);
}
