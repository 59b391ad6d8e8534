import { readConfigText } from '../../core/config.js';
import type { Command } from '../command.js';
import { detectKind, type FileKind, fileKinds } from '../file-kinds.js';
import { parseCommandArgs, usageError } from '../usage.js';

const kinds = Object.keys(fileKinds) as FileKind[];

const usage = `usage: trellis validate [--kind ${kinds.join('|')}] FILE…

Checks files without running them. The kind of each file is told by its top-level keys (app: a
sidecar, remotes: an ambassador, workloads: a host, stages: a pipeline, anything else a gateway)
or given with --kind. For a gateway file: the schema, references between sections, clashes that
cannot run (a port used twice, frontends alike, duplicate route names) and the files the
configuration names (certificates, keys, JWKS files, static roots); for a host file, also every
workload's module. Prints "FILE: ok (KIND)" for a valid one; for an invalid one prints every
problem as FILE:LINE:COLUMN PATH: MESSAGE, in line order, and exits 1.

options:
  --kind KIND           check every file as this kind instead of telling it from its keys`;

const options = { kind: { type: 'string' } } as const;

async function run(argv: string[]): Promise<number> {
  const { values, positionals: files } = parseCommandArgs(argv, options);
  if (files.length === 0) throw usageError('name the file to check');
  if (values.kind !== undefined && !(kinds as string[]).includes(values.kind)) {
    throw usageError(`--kind must be one of ${kinds.join(', ')} (got "${values.kind}")`);
  }
  let failed = false;
  for (const file of files) {
    try {
      const kind = (values.kind as FileKind | undefined) ?? detectKind(readConfigText(file));
      fileKinds[kind](file);
      process.stdout.write(`${file}: ok (${kind})\n`);
    } catch (err) {
      failed = true;
      const e = err as { code?: string; message: string };
      process.stderr.write(
        e.code === 'TRELLIS_E_CONFIG_INVALID' ? `${e.message}\n` : `${e.code}: ${e.message}\n`,
      );
    }
  }
  return failed ? 1 : 0;
}

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check a gateway, sidecar, ambassador, host or pipeline file without running it',
  usage,
  run,
};
