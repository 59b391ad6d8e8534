import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ambassadorRole, parseAmbassadorConfig } from '../ambassador/ambassador.js';
import { ConfigError, configIssueAt, readConfigText } from '../core/config.js';
import { validateGatewayFile } from '../gateway/validate-file.js';
import { parseHostConfig } from '../host/host.js';
import { loadPipelineFile } from '../pipeline/config.js';
import { parseSidecarConfig } from '../sidecar/role.js';

/**
 * The kinds of file the CLI runs, and how `trellis validate` checks each without running it.
 * Each check throws ConfigError with every problem (FILE:LINE:COLUMN PATH: MESSAGE).
 */
export const fileKinds = {
  gateway: (file: string) => void validateGatewayFile(file),
  sidecar: (file: string) => void parseSidecarConfig(readConfigText(file), file),
  ambassador: (file: string) => {
    const text = readConfigText(file);
    const config = parseAmbassadorConfig(text, file);
    const issues = ambassadorRole.fileIssues!(config, text, file, dirname(resolve(file)));
    if (issues.length > 0) throw new ConfigError(issues);
  },
  host: checkHostFile,
  pipeline: (file: string) => void loadPipelineFile(file),
} as const;

export type FileKind = keyof typeof fileKinds;

/**
 * Which kind a file is, from the top-level key only that kind has (`app:` a sidecar, `remotes:`
 * an ambassador, `workloads:` a host, `stages:` a pipeline); anything else is a gateway file,
 * including text that is not YAML (the gateway check then reports the syntax error with its
 * line). Guessing from keys keeps `trellis validate *.yaml` working on a folder of mixed files.
 */
export function detectKind(text: string): FileKind {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch {
    return 'gateway';
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'gateway';
  if ('app' in raw) return 'sidecar';
  if ('remotes' in raw) return 'ambassador';
  if ('workloads' in raw) return 'host';
  if ('stages' in raw) return 'pipeline';
  return 'gateway';
}

/** A host file: its schema and dependency order, and every workload's module on disk. */
function checkHostFile(file: string): void {
  const text = readConfigText(file);
  const config = parseHostConfig(text, file);
  const dir = dirname(resolve(file));
  const issues = Object.entries(config.workloads).flatMap(([name, w]) =>
    existsSync(resolve(dir, w.module))
      ? []
      : [
          configIssueAt(
            text,
            file,
            ['workloads', name, 'module'],
            `no file ${w.module} (a module path is relative to the host file's folder, ${dir})`,
          ),
        ],
  );
  if (issues.length > 0) throw new ConfigError(issues);
}
