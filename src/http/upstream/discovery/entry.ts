import { z } from 'zod';
import { originProblem } from '../schema.js';

/**
 * The value an instance writes under the registry prefix (`registerService` writes it): its
 * origin, its share and how long the key stays valid without a refresh. JSON, so any language
 * can register: `{"url":"http://10.0.0.5:8080","weight":1,"ttl":10000}`.
 */
export const registryEntrySchema = z.strictObject({
  url: z.string().superRefine((value, ctx) => {
    const problem = originProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
  weight: z.number().int().min(1).max(128).default(1),
  /** ms: the key lapses when it has not been written again for this long. */
  ttl: z.number().int().min(100),
});

export type RegistryEntry = z.output<typeof registryEntrySchema>;

/** The entry in a registry value, or why it is not one. */
export function parseRegistryEntry(value: string): RegistryEntry | string {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch {
    return 'not JSON: write {"url":"http://HOST:PORT","ttl":MS}';
  }
  const parsed = registryEntrySchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  return parsed.error.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`).join('; ');
}
