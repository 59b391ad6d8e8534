import { TrellisError } from '../../core/errors.js';
import { fileProvider } from './file.js';
import { memoryProvider } from './memory.js';
import type { ConfigProvider } from './types.js';

/** How a role's start options name its configuration (`startGateway`, `startAmbassador`, ...). */
export interface ProviderOptions {
  provider?: ConfigProvider | undefined;
  /** A YAML file, watched unless `watch: false`. */
  file?: string | undefined;
  /** YAML text instead of a file. */
  text?: string | undefined;
  label?: string | undefined;
  watch?: boolean | undefined;
}

/** The provider the options name: a provider as given, else a file, else a text. `who` names the caller in the error. */
export function providerFromOptions(options: ProviderOptions, who: string): ConfigProvider {
  if (options.provider !== undefined) return options.provider;
  if (options.file !== undefined) {
    return fileProvider(options.file, {
      ...(options.watch === undefined ? {} : { watch: options.watch }),
      ...(options.label === undefined ? {} : { label: options.label }),
    });
  }
  if (options.text !== undefined) return memoryProvider(options.text, { label: options.label ?? '<inline>' });
  throw new TrellisError('TRELLIS_E_USAGE', `${who} needs a file, a text or a provider`);
}
