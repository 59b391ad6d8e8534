import type { Logger } from 'pino';
import { messageOf, TrellisError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import { redactUrl } from '../../stores/connection.js';
import type { ConfigProvider, ConfigSink, ReloadResult } from './types.js';

/** Options of `configStoreProvider`. */
export interface ConfigStoreProviderOptions {
  logger?: Logger;
  /** Token for a `trellis config serve` URL (default $TRELLIS_CONFIG_TOKEN). */
  token?: string | undefined;
  /** Last-known-good copy to start from while the store is down (default $TRELLIS_CONFIG_CACHE). */
  cacheFile?: string | undefined;
  /** Folder relative paths in the document start from (default the working directory). */
  baseDir?: string;
}

/**
 * Follows one document of a configuration store: `URL#key[@label]`, where URL is a
 * `trellis config serve` address or a store URL (`sqlite:./config.db`, `etcd://…`). Goes through a
 * ConfigClient, so changes arrive in revision order with gap resync and reconnect backoff; each
 * new revision is pushed to the runtime, a deleted document keeps the running configuration.
 */
export function configStoreProvider(spec: string, options: ConfigStoreProviderOptions = {}): ConfigProvider {
  const logger = options.logger ?? silentLogger();
  const hash = spec.lastIndexOf('#');
  if (hash <= 0 || hash === spec.length - 1) {
    throw new TrellisError(
      'TRELLIS_E_USAGE',
      `--config-from ${spec}: write URL#key[@label], like http://127.0.0.1:7070#shop/gateway@prod or sqlite:./config.db#shop/gateway`,
      { details: { exitCode: 2 } },
    );
  }
  const url = spec.slice(0, hash);
  const [key = '', labelPart] = spec.slice(hash + 1).split('@');
  type Client = Awaited<ReturnType<typeof import('../../config/client.js').createConfigClient>>;
  let client: Client | undefined;
  let label = labelPart;
  const name = () => `config-store#${key}@${label}`;
  const provider: ConfigProvider = {
    get label() {
      return name();
    },
    baseDir: options.baseDir ?? process.cwd(),
    async initial() {
      // Loaded on use: a file-driven runtime never loads the configuration client.
      const [{ createConfigClient }, { DEFAULT_LABEL }] = await Promise.all([
        import('../../config/client.js'),
        import('../../config/document.js'),
      ]);
      label ??= DEFAULT_LABEL;
      client = await createConfigClient({
        source: url,
        token: options.token ?? process.env.TRELLIS_CONFIG_TOKEN,
        prefix: key,
        label,
        cacheFile: options.cacheFile ?? process.env.TRELLIS_CONFIG_CACHE,
        logger,
      });
      const doc = client.document(key);
      if (!doc) {
        await client.close();
        client = undefined;
        throw new TrellisError(
          'TRELLIS_E_CONFIG_NOT_FOUND',
          `${key}@${label} does not exist in ${redactUrl(url)}: write it first (trellis config set ${key} FILE --label ${label})`,
        );
      }
      return doc.content;
    },
    start(sink: ConfigSink) {
      let chain: Promise<unknown> = Promise.resolve();
      client?.subscribe((change) => {
        // The prefix also matches longer keys (shop/gateway2): only this document counts.
        if (change.key !== key) return;
        if (change.type === 'delete' || !change.document) {
          logger.warn(
            { source: name() },
            'the document was deleted from the store: keeping the current configuration',
          );
          return;
        }
        const { content, revision } = change.document;
        chain = chain
          .then(() => sink.apply(content))
          .catch((err: unknown) =>
            logger.error({ source: name(), revision, err: messageOf(err) }, 'applying failed'),
          );
      });
    },
    async reload(sink: ConfigSink): Promise<ReloadResult> {
      const doc = client?.document(key);
      if (!doc)
        return sink.fail(`${key}@${label} is not in the store any more: keeping the current configuration`);
      return sink.apply(doc.content);
    },
    async close() {
      const c = client;
      client = undefined;
      await c?.close();
    },
  };
  return provider;
}
