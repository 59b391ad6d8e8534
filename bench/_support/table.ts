/** Printing results as aligned Markdown tables, which read well in a terminal and paste into docs. */

/** A Markdown table with columns padded to their widest cell; numbers right-aligned. */
export function table(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length), 3));
  const pad = (text: string, i: number) => (numeric[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
  const line = (r: readonly string[]) => `| ${r.map((c, i) => pad(c, i)).join(' | ')} |`;
  const rule = `| ${widths.map((w, i) => (numeric[i] ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  return [line(headers), rule, ...cells.map(line)].join('\n');
}

/** The two-column `ratio | value` table benchmarks print after their results. */
export function ratioTable(rows: readonly (readonly [string, string])[]): string {
  return table(['ratio', 'value'], rows);
}

/** 12345.6 -> "12,346"; 3 -> "3"; 1.234 -> "1.23"; 0.0123 -> "0.012". */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) || Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(2);
}

/** `a / b` as "1.32x". */
export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

/** A line saying whether a target was met: `PASS trellis/fastify 1.41x (target >= 1.3x)`. */
export function verdict(
  label: string,
  value: number,
  target: number,
  higherIsBetter = true,
  /** What value and target are counted in: `x` for a ratio (the default), ` ms` for a latency. */
  unit = 'x',
): string {
  const ok = higherIsBetter ? value >= target : value <= target;
  return `${ok ? 'PASS' : 'MISS'} ${label} ${value.toFixed(2)}${unit} (target ${higherIsBetter ? '>=' : '<='} ${target}${unit})`;
}
