// `violin-lab down`: cleans up after a `violin-lab up` that was killed before
// its own teardown could run (kill -9, a crash), by the PIDs and names it recorded.
import type { Command } from '../../../src/cli/dispatch.js';
import { errorMessage } from '../../../src/errors.js';
import { tearDownRecordedLab } from '../../cluster/record.js';

export const command: Command = {
  summary: "stop what a killed 'up' left running (processes by PID, namespace, temp dir)",
  async run(argv) {
    if (argv.length > 0) {
      const help = argv.length === 1 && ['-h', '--help', 'help'].includes(argv[0] ?? '');
      (help ? process.stdout : process.stderr).write('usage: violin-lab down\n');
      return help ? 0 : 2;
    }
    try {
      process.stdout.write(`${await tearDownRecordedLab('lab')}\n`);
      return 0;
    } catch (error) {
      process.stderr.write(`violin-lab down: ${errorMessage(error)}\n`);
      return 1;
    }
  },
};
