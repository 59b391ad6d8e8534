/** One `trellis <name>` command: a thin shell over a library call. */
export interface Command {
  /** `gateway`, `config`, … */
  name: string;
  /** One line for `trellis --help`. */
  summary: string;
  /** Full usage text for `trellis <name> --help`. */
  usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}
