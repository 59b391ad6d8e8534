import { createHash } from 'node:crypto';
import { z } from 'zod';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/** One targeting rule: when every attribute matches, serve `serve` or the rule's own rollout. */
const ruleSchema = z.strictObject({
  /** Attribute → value, or a list of accepted values. */
  when: z.record(z.string(), z.union([scalar, z.array(scalar)])),
  serve: z.boolean().optional(),
  /** Percentage (0–100) of keys matching this rule that get the flag. */
  rollout: z.number().min(0).max(100).optional(),
});

/**
 * A feature flag document (`flags/<name>`): a master switch, targeting rules (first match
 * wins), then a percentage rollout for everyone else (absent: everyone, when enabled).
 */
export const flagSchema = z.strictObject({
  enabled: z.boolean().default(true),
  rules: z.array(ruleSchema).default([]),
  rollout: z.number().min(0).max(100).optional(),
});

export type FeatureFlag = z.output<typeof flagSchema>;

/** Who is asking: a stable key (user or account id) for rollouts, and attributes for targeting. */
export interface FlagContext {
  key?: string;
  attributes?: Record<string, string | number | boolean | undefined>;
}

/**
 * Where `key` falls in [0, 100) for flag `name`: a stable hash (SHA-256 of name and key), so a
 * key keeps its answer across processes and restarts, and different flags roll out to
 * independent slices of the keys.
 */
export function rolloutBucket(name: string, key: string): number {
  const h = createHash('sha256').update(name).update('\0').update(key).digest();
  // 48 bits are plenty for an even spread and stay exact in a double.
  return (h.readUIntBE(0, 6) / 2 ** 48) * 100;
}

function inRollout(name: string, percentage: number, ctx: FlagContext): boolean {
  if (percentage >= 100) return true;
  if (percentage <= 0) return false;
  // Without a key there is no stable slice to put the caller in: stay off rather than flap.
  if (ctx.key === undefined) return false;
  return rolloutBucket(name, ctx.key) < percentage;
}

function matches(when: Record<string, unknown>, attributes: FlagContext['attributes'] = {}): boolean {
  return Object.entries(when).every(([attr, expected]) => {
    const actual = attributes[attr];
    if (actual === undefined) return false;
    return Array.isArray(expected) ? expected.includes(actual) : expected === actual;
  });
}

/** Evaluates a flag for a caller, entirely in the client (no request per evaluation). */
export function evaluateFlag(name: string, flag: FeatureFlag, ctx: FlagContext = {}): boolean {
  if (!flag.enabled) return false;
  for (const rule of flag.rules) {
    if (!matches(rule.when, ctx.attributes)) continue;
    if (rule.rollout !== undefined) return inRollout(name, rule.rollout, ctx);
    return rule.serve ?? true;
  }
  return flag.rollout === undefined ? true : inRollout(name, flag.rollout, ctx);
}
