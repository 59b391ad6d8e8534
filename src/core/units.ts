import { z } from 'zod';
import { TrellisError } from './errors.js';

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1024,
  mb: 1024 ** 2,
  gb: 1024 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/i;
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)$/i;

/** Parses `250ms`, `5s`, `1.5m`, `2h`; a bare number is milliseconds. Returns milliseconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number' && Number.isFinite(input) && input >= 0) return input;
  const m = typeof input === 'string' ? DURATION_RE.exec(input.trim()) : null;
  if (!m) {
    throw new TrellisError(
      'TRELLIS_E_INVALID_DURATION',
      `invalid duration ${JSON.stringify(input)}: write a number with a unit, like 250ms, 5s, 2m or 1h`,
    );
  }
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!.toLowerCase()]!);
}

/** Parses `512b`, `10kb`, `1mb`, `1gb` (binary multiples); a bare number is bytes. Returns bytes. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number' && Number.isInteger(input) && input >= 0) return input;
  const m = typeof input === 'string' ? SIZE_RE.exec(input.trim()) : null;
  if (!m) {
    throw new TrellisError(
      'TRELLIS_E_INVALID_SIZE',
      `invalid size ${JSON.stringify(input)}: write a number with a unit, like 512b, 64kb or 1mb`,
    );
  }
  return Math.round(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}

function unitSchema(parse: (v: string | number) => number, hint: string) {
  return z.union([z.string(), z.number()]).transform((value, ctx) => {
    try {
      return parse(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected ${hint}, got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
  });
}

/** Zod schema: a duration string (`250ms`, `5s`) or milliseconds, output in milliseconds. */
export const duration = () => unitSchema(parseDuration, 'a duration like 250ms, 5s or 1m');
/** Zod schema: a size string (`64kb`, `1mb`) or bytes, output in bytes. */
export const size = () => unitSchema(parseSize, 'a size like 512b, 64kb or 1mb');
