import { z } from 'zod';
import { gatewaySchema } from '../../gateway/schema.js';
import type { Command } from '../command.js';
import { usageError } from '../usage.js';

const usage = `usage: trellis schema [gateway]

Prints the JSON Schema of a gateway file, for editor completion and checking, e.g. with the
YAML language server: # yaml-language-server: $schema=./gateway.schema.json`;

async function run(argv: string[]): Promise<number> {
  const [kind = 'gateway', ...rest] = argv;
  if (kind !== 'gateway' || rest.length > 0)
    throw usageError(`unknown schema "${argv.join(' ')}": use gateway`);
  // `input`: what a user writes (defaults optional), not what the parser returns.
  const json = z.toJSONSchema(gatewaySchema(), { io: 'input', unrepresentable: 'any' });
  process.stdout.write(`${JSON.stringify({ title: 'Trellis gateway file', ...json }, null, 2)}\n`);
  return 0;
}

export const schemaCommand: Command = {
  name: 'schema',
  summary: 'print the JSON Schema of gateway files',
  usage,
  run,
};
