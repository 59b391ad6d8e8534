import { formatPath } from '../core/config.js';

/** One difference between two documents, by path. */
export interface ValueDiff {
  op: 'add' | 'remove' | 'change';
  path: string;
  before?: unknown;
  after?: unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What changes between two parsed documents, path by path (a structural diff: reformatting
 * JSON as YAML is no change, a moved key is none either). Arrays compare element by element.
 */
export function diffValues(before: unknown, after: unknown, path: PropertyKey[] = []): ValueDiff[] {
  if (isObject(before) && isObject(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => {
      if (!(k in after))
        return [{ op: 'remove' as const, path: formatPath([...path, k]), before: before[k] }];
      if (!(k in before)) return [{ op: 'add' as const, path: formatPath([...path, k]), after: after[k] }];
      return diffValues(before[k], after[k], [...path, k]);
    });
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const out: ValueDiff[] = [];
    for (let i = 0; i < Math.max(before.length, after.length); i++) {
      if (i >= after.length) out.push({ op: 'remove', path: formatPath([...path, i]), before: before[i] });
      else if (i >= before.length) out.push({ op: 'add', path: formatPath([...path, i]), after: after[i] });
      else out.push(...diffValues(before[i], after[i], [...path, i]));
    }
    return out;
  }
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  if (before === undefined) return [{ op: 'add', path: formatPath(path), after }];
  return [{ op: 'change', path: formatPath(path), before, after }];
}

/** `+ path: value`, `- path: value`, `~ path: old -> new`, one line each. */
export function formatDiff(diffs: ValueDiff[]): string {
  const show = (v: unknown) => JSON.stringify(v);
  return diffs
    .map((d) => {
      const where = d.path || '(document)';
      if (d.op === 'add') return `+ ${where}: ${show(d.after)}`;
      if (d.op === 'remove') return `- ${where}: ${show(d.before)}`;
      return `~ ${where}: ${show(d.before)} -> ${show(d.after)}`;
    })
    .join('\n');
}
