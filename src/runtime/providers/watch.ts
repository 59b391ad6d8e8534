import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Calls `onChange` (debounced) when `file` changes. Watches the folder, not the file: editors
 * and `kubectl`-style updates replace the file by renaming, which a watch on the file itself
 * loses after the first change.
 */
export function watchFile(file: string, onChange: () => void, debounceMs = 100): () => void {
  const name = basename(file);
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (timer) clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    watcher.on('error', () => watcher?.close());
  } catch {
    // No watching possible (e.g. the folder vanished): SIGHUP still reloads.
    return () => {};
  }
  return () => {
    if (timer) clearTimeout(timer);
    watcher?.close();
  };
}

/** Calls `onChange` (debounced once for all) when any of `files` changes; returns the stop function. */
export function watchFiles(files: readonly string[], onChange: () => void, debounceMs = 100): () => void {
  let timer: NodeJS.Timeout | undefined;
  const fire = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  };
  const stops = [...new Set(files)].map((f) => watchFile(f, fire, 0));
  return () => {
    if (timer) clearTimeout(timer);
    for (const stop of stops) stop();
  };
}
