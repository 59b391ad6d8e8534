import { dirname, resolve } from 'node:path';
import { ConfigError, configIssueAt, type LoadOptions, parseConfig, readConfigText } from '../core/config.js';
import { serviceTlsIssues } from '../http/upstream/index.js';
import { referencedFileProblem, referencedFiles } from './referenced-files.js';
import { type GatewayConfig, gatewaySchema } from './schema.js';

/**
 * Everything `trellis validate` checks in one gateway file: the schema, references, clashes
 * and the files the configuration names. Throws ConfigError with every problem, or
 * TRELLIS_E_CONFIG_UNREADABLE when the file itself cannot be read.
 */
export function validateGatewayFile(file: string, options: LoadOptions = {}): GatewayConfig {
  const text = readConfigText(file);
  const config = parseConfig(text, gatewaySchema(), file, options);
  const issues = referencedFiles(config, dirname(resolve(file))).flatMap((ref) => {
    const problem = referencedFileProblem(ref);
    return problem === undefined ? [] : [configIssueAt(text, file, ref.path, problem)];
  });
  const dir = dirname(resolve(file));
  issues.push(
    ...serviceTlsIssues(
      Object.entries(config.services).map(([name, def]) => ({ path: ['services', name], tls: def.tls })),
      text,
      file,
      dir,
    ),
  );
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
