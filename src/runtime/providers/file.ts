import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { messageOf, TrellisError } from '../../core/errors.js';
import type { ConfigProvider, ConfigSink, ReloadResult } from './types.js';
import { watchFile } from './watch.js';

/** Reads a configuration file; TRELLIS_E_CONFIG_UNREADABLE (with the path) when it cannot. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TrellisError(
      'TRELLIS_E_CONFIG_UNREADABLE',
      missing
        ? `${file}: no such file: check the path (relative paths start from ${process.cwd()})`
        : `${file}: cannot read the file (${messageOf(err)})`,
      { cause: err },
    );
  }
}

/** Options of `fileProvider`. */
export interface FileProviderOptions {
  /** Reload when the file changes (default true). */
  watch?: boolean;
  /** Name in messages (default: the path as given). */
  label?: string;
}

/**
 * A configuration file: read at start, watched (the folder, so editors' rename-on-save and
 * ConfigMap symlink swaps are seen), and read again on `reload` (the runtime calls it on SIGHUP).
 * An unreadable file on reload is a rejected reload: the running configuration stays.
 */
export function fileProvider(file: string, options: FileProviderOptions = {}): ConfigProvider {
  const path = resolve(file);
  const label = options.label ?? file;
  let stopWatching: (() => void) | undefined;
  const reload = async (sink: ConfigSink): Promise<ReloadResult> => {
    let text: string;
    try {
      text = readConfigText(path);
    } catch (err) {
      return sink.fail(messageOf(err));
    }
    return sink.apply(text);
  };
  return {
    label,
    baseDir: dirname(path),
    initial: async () => readConfigText(path),
    start(sink) {
      if (options.watch === false) return;
      stopWatching = watchFile(path, () => void reload(sink));
    },
    reload,
    async close() {
      stopWatching?.();
      stopWatching = undefined;
    },
  };
}
