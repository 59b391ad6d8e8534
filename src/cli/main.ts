#!/usr/bin/env node
import { ConfigError } from '../core/config.js';
import { isTrellisError, messageOf } from '../core/errors.js';
import { closest } from '../core/suggest.js';
import { commands } from './commands/index.js';

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.length), 8);
  return [
    'usage: trellis <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run `trellis <command> --help` for a command's options.",
  ].join('\n');
}

// `trellis schema | head` closes the pipe early: that is the reader's choice, not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${help()}\n`);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    const guess = closest(
      name,
      commands.map((c) => c.name),
    );
    process.stderr.write(
      `trellis: unknown command "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}\n\n${help()}\n`,
    );
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(`${command.usage}\n`);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    if (isTrellisError(err)) {
      process.stderr.write(`${err.code}: ${err.message}\n`);
      if (err.code === 'TRELLIS_E_USAGE') {
        process.stderr.write(`\n${command.usage}\n`);
        return 2;
      }
      return 1;
    }
    process.stderr.write(`trellis ${name}: unexpected error: ${messageOf(err)}\n`);
    if (process.env.TRELLIS_DEBUG) console.error(err);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`trellis: ${messageOf(err)}\n`);
    process.exitCode = 1;
  },
);
