/** What a publish reports as it goes. */
export type PublishEvent =
  | { type: 'phase'; phase: 'assets' | 'entries' | 'switch' | 'prune'; files: number; bytes: number }
  | { type: 'file'; key: string; bytes: number; skipped: boolean; variants?: string[] }
  | { type: 'done'; release: string; uploaded: number; skipped: number; pruned: string[] };

/**
 * Shows publish progress: a one-line bar (files, bytes, rate) redrawn on a terminal, plain lines
 * otherwise (CI logs, pipes).
 */
export function progressReporter(out: NodeJS.WriteStream): (e: PublishEvent) => void {
  const tty = out.isTTY === true;
  let phase = '';
  let total = 0;
  let totalBytes = 0;
  let done = 0;
  let bytes = 0;
  let started = performance.now();
  let lastDraw = 0;
  const draw = (force: boolean) => {
    const now = performance.now();
    if (!force && now - lastDraw < 100) return;
    lastDraw = now;
    const width = 24;
    const filled = total === 0 ? width : Math.round((done / total) * width);
    const rate = bytes / Math.max(0.001, (now - started) / 1000);
    out.write(
      `\r${phase.padEnd(8)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} files ${human(bytes)}/${human(totalBytes)} ${human(rate)}/s\x1b[K`,
    );
  };
  return (e) => {
    if (e.type === 'phase') {
      if (tty && phase !== '') out.write('\n');
      phase = e.phase;
      total = e.files;
      totalBytes = e.bytes;
      done = 0;
      bytes = 0;
      started = performance.now();
      if (tty) draw(true);
      else out.write(`${e.phase}: ${e.files} objects, ${human(e.bytes)}\n`);
    } else if (e.type === 'file') {
      done++;
      bytes += e.bytes;
      if (tty) draw(done === total);
      else {
        const plus = e.variants?.length ? ` +${e.variants.join(' +')}` : '';
        out.write(`${e.skipped ? 'present ' : 'uploaded'} ${e.key} (${human(e.bytes)})${plus}\n`);
      }
    } else {
      if (tty) out.write('\n');
      out.write(
        `release ${e.release} is live: ${e.uploaded} uploaded, ${e.skipped} already present${e.pruned.length ? `, pruned ${e.pruned.join(', ')}` : ''}\n`,
      );
    }
  };
}

export function human(n: number): string {
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}
