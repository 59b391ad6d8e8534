/** How a reload ended. */
export interface ReloadResult {
  ok: boolean;
  /** The active version after the attempt (unchanged when rejected). */
  version: number;
  /** Where the text came from: a file path, `config-store#key@label` or `<memory>`. */
  label: string;
  at: string;
  /** The exact `trellis validate` messages, one per line, when rejected. */
  errors?: string[];
  /** Things that were applied partly (e.g. an admin address change needs a restart). */
  warnings?: string[];
}

/** Where a provider pushes configurations: the runtime, which validates, compiles and swaps. */
export interface ConfigSink {
  /** A new configuration text: validated, compiled and swapped in, or rejected (still serving the last). */
  apply(text: string): Promise<ReloadResult>;
  /** The provider could not produce a text (an unreadable file): recorded as a rejected reload. */
  fail(error: string): ReloadResult;
}

/**
 * A configuration provider, in Traefik's sense: it produces the first configuration and then
 * pushes each new one to the runtime, which validates it and swaps it in atomically (or rejects
 * it and keeps serving). The runtime never reads files or stores itself; providers do.
 * Built in: `fileProvider` (watch + SIGHUP), `configStoreProvider` (a configuration-store
 * document), `memoryProvider` (an object a library user sets).
 */
export interface ConfigProvider {
  /** Where configurations come from, for messages: a path, `config-store#key@label`, `<memory>`. */
  readonly label: string;
  /** The folder relative paths in a configuration start from (certificates, JWKS files). */
  readonly baseDir: string;
  /** The first configuration's text; throws when there is none (the runtime does not start). */
  initial(): Promise<string>;
  /** Starts pushing new versions to `sink` (watching a file, following a document). */
  start?(sink: ConfigSink): void;
  /** Reads the source again now (SIGHUP, `reload()`); without it a reload re-applies the active text. */
  reload?(sink: ConfigSink): Promise<ReloadResult>;
  /** Stops pushing and releases what the provider holds (watchers, store clients). */
  close?(): Promise<void>;
}
