import { validateGatewayFile } from '../../gateway/validate-file.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage: trellis validate FILE…

Checks gateway files without running them: the schema, references between sections, clashes
that cannot run (a port used twice, frontends alike, duplicate route names) and the files the
configuration names (certificates, keys, JWKS files, static roots). Prints "FILE: ok" for a
valid one; for an invalid one prints every problem as FILE:LINE:COLUMN PATH: MESSAGE, in line
order, and exits 1.`;

async function run(argv: string[]): Promise<number> {
  const files = parseCommandArgs(argv, {}).positionals;
  if (files.length === 0) throw usageError('name the file to check');
  let failed = false;
  for (const file of files) {
    try {
      validateGatewayFile(file);
      process.stdout.write(`${file}: ok\n`);
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
  summary: 'check a gateway file without running it',
  usage,
  run,
};
