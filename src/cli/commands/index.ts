import type { Command } from '../command.js';

/** Every `trellis` command; one file each under `cli/commands/`. */
export const commands: Command[] = [];
