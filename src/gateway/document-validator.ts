import { ConfigError, parseConfig } from '../core/config.js';
import { gatewaySchema } from './schema.js';

/**
 * The gateway's own checks for a gateway document kept in the configuration store (schema,
 * references, clashes; not the files it names, which live where the gateway runs), so a
 * document the gateway would refuse is refused at the store with the same `KEY:LINE:COL`
 * messages. Bound with `trellis config schema set PREFIX --validator gateway`.
 */
export const gatewayDocumentValidator = {
  validate(content: string, name: string) {
    try {
      // The store's environment is not the gateway's: `${NAME}` values are not judged here.
      parseConfig(content, gatewaySchema(), name, { env: {}, unsetVariables: 'ignore' });
      return [];
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.issues.map(({ line, column, path, message }) => ({ line, column, path, message }));
    }
  },
};
