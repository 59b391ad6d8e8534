import type { ConfigProvider, ConfigSink, ReloadResult } from './types.js';

/** A provider a library user drives from code: `set` pushes a new configuration. */
export interface MemoryProvider extends ConfigProvider {
  /** Validates, compiles and swaps in `config` (an object as the YAML file would give, or YAML text). */
  set(config: object | string): Promise<ReloadResult>;
}

function textOf(config: object | string): string {
  // JSON is YAML: one validation path (and its messages) for files, stores and objects.
  return typeof config === 'string' ? config : JSON.stringify(config, null, 2);
}

/**
 * A configuration held in memory: `memoryProvider({ listen: { port: 8080 }, routes: [...] })`,
 * then `provider.set(next)` whenever it changes. `set` before the runtime has started is refused.
 */
export function memoryProvider(
  initial: object | string,
  options: { label?: string; baseDir?: string } = {},
): MemoryProvider {
  let sink: ConfigSink | undefined;
  let current = textOf(initial);
  return {
    label: options.label ?? '<memory>',
    baseDir: options.baseDir ?? process.cwd(),
    initial: async () => current,
    start(s) {
      sink = s;
    },
    async set(config) {
      if (sink === undefined)
        throw new Error('memoryProvider.set: the runtime has not started (or has stopped)');
      const text = textOf(config);
      const result = await sink.apply(text);
      if (result.ok) current = text;
      return result;
    },
    reload: (s) => s.apply(current),
    async close() {
      sink = undefined;
    },
  };
}
