import type { Command } from '../command.js';
import { aclCommand } from './acl.js';
import { ambassadorCommand } from './ambassador.js';
import { configCommand } from './config.js';
import { gatewayCommand } from './gateway.js';
import { hostCommand } from './host.js';
import { leaderCommand } from './leader.js';
import { pipelineCommand } from './pipeline.js';
import { projectionsCommand } from './projections.js';
import { schemaCommand } from './schema.js';
import { sidecarCommand } from './sidecar.js';
import { staticCommand } from './static.js';
import { stranglerCommand } from './strangler.js';
import { validateCommand } from './validate.js';

/** Every `trellis` command; one file each under `cli/commands/`. */
export const commands: Command[] = [
  gatewayCommand,
  ambassadorCommand,
  validateCommand,
  schemaCommand,
  leaderCommand,
  configCommand,
  projectionsCommand,
  sidecarCommand,
  aclCommand,
  staticCommand,
  stranglerCommand,
  pipelineCommand,
  hostCommand,
];
