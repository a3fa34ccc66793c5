// `violin-lab`: the lab's own program (make demo), beside the product's
// `violin` (src/cli/main.ts), which the image ships and which therefore never
// imports the lab. Run through tsx from a checkout:
//
//   npx tsx lab/cli/main.ts up|down|demo [options]
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { dispatch } from '../../src/cli/dispatch.js';

const commandsDir = `${dirname(fileURLToPath(import.meta.url))}/commands`;

process.exitCode = await dispatch('violin-lab', commandsDir, process.argv.slice(2));
