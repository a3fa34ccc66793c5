// `violin`: the product's one binary, one subcommand per component (operator,
// ofc, agent, dev), each in src/cli/commands/<name>.ts. The lab's commands
// (up, down, demo) are the lab's own program, lab/cli/main.ts.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { dispatch } from './dispatch.js';

const commandsDir = `${dirname(fileURLToPath(import.meta.url))}/commands`;

process.exitCode = await dispatch('violin', commandsDir, process.argv.slice(2));
