import { type ParseArgsConfig, parseArgs } from 'node:util';
import { TrellisError } from '../core/errors.js';
import { closest } from '../core/suggest.js';

/** A mistake on the command line: printed with the command's usage, exit code 2. */
export function usageError(message: string): TrellisError {
  return new TrellisError('TRELLIS_E_USAGE', message, { details: { exitCode: 2 } });
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Strict argument parsing for a command: an unknown flag (with a did-you-mean), a missing value
 * or a stray argument becomes a usage error in our words (printed with the command's usage),
 * never a raw Node exception.
 */
export function parseCommandArgs<O extends Options, P extends boolean = true>(
  argv: string[],
  options: O,
  allowPositionals?: P,
): ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: P; strict: true }>> {
  checkFlags(argv, options);
  try {
    return parseArgs({
      args: argv,
      options,
      allowPositionals: (allowPositionals ?? true) as P,
      strict: true,
    });
  } catch (err) {
    throw usageError(explain(err as Error & { code?: string }));
  }
}

/** Refuses a flag the command does not have, suggesting the nearest one it has. */
function checkFlags(argv: readonly string[], options: Options): void {
  const shorts = new Map(
    Object.entries(options)
      .filter(([, o]) => o.short !== undefined)
      .map(([name, o]) => [o.short!, name]),
  );
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return;
    let name: string | undefined;
    if (arg.startsWith('--')) {
      name = arg.slice(2).split('=')[0]!;
      if (!(name in options)) {
        const guess = closest(name, Object.keys(options));
        const known = Object.keys(options).map((o) => `--${o}`);
        throw usageError(
          guess
            ? `unknown option --${name} (did you mean --${guess}?)`
            : `unknown option --${name}${known.length ? `: this command takes ${known.join(', ')}` : ': this command takes no options'}`,
        );
      }
      if (arg.includes('=')) continue;
    } else if (/^-[^-\d]$/.test(arg)) {
      name = shorts.get(arg.slice(1));
      if (name === undefined) throw usageError(`unknown option ${arg}`);
    } else {
      continue;
    }
    // A string option's value is the next argument, whatever it looks like.
    if (options[name]!.type === 'string') i++;
  }
}

function explain(err: Error & { code?: string }): string {
  const flag = /'(-[^' ]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(err.message)) return `${flag} takes no value`;
      if (/ambiguous/.test(err.message)) {
        return `${flag} needs a value; for a value that starts with "-", write ${flag}=-VALUE`;
      }
      return `${flag} needs a value: ${flag} VALUE`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /'([^']*)'/.exec(err.message)?.[1];
      return `unexpected argument "${arg}": this command takes options only`;
    }
    default:
      return err.message;
  }
}
