// Every CLI command, in the order `nemutator --help` lists them. Add new commands here.
import type { Command } from '../command.ts';
import { auditCommand } from './audit.ts';
import { dictCommand } from './dict.ts';
import { flameCommand } from './flame.ts';
import { mutationsCommand } from './mutations.ts';
import { neighboursCommand } from './neighbours.ts';
import { nodesCommand } from './nodes.ts';
import { runCommand } from './run.ts';
import { secretsCommand } from './secrets.ts';
import { simulateCommand } from './simulate.ts';
import { skipRulesCommand } from './skip-rules.ts';
import { statusCommand } from './status.ts';
import { whatifCommand } from './whatif.ts';

export const commands: Command[] = [
  statusCommand,
  nodesCommand,
  neighboursCommand,
  dictCommand,
  mutationsCommand,
  skipRulesCommand,
  secretsCommand,
  runCommand,
  flameCommand,
  whatifCommand,
  simulateCommand,
  auditCommand,
];
