// `violin-lab up`: the whole system on this machine (lab/cluster), for a person
// to explore with kubectl. It runs in the foreground (the KubeVirt stand-in
// lives in this process) until Ctrl-C; `violin-lab down` cleans up after an `up`
// that was killed before it could.
//
// The lab runs in a session of its own (a child `up`, detached), and this
// process passes it the first Ctrl-C: a terminal's Ctrl-C signals every process
// of the foreground job, which would otherwise kill the API server, the OFC,
// the operator, the agents and the switch all at once, before the lab could
// take them down in order (and delete its bundles through its API server).
import { spawn } from 'node:child_process';

import type { Command } from '../../../src/cli/dispatch.js';
import { errorMessage } from '../../../src/errors.js';
import { parseCommandFlags } from '../../../src/cli/flags.js';
import { untilSignal } from '../../../src/cli/signals.js';
import { deployBank, type BankService } from '../../cluster/bank.js';
import { startLabCluster } from '../../cluster/cluster.js';
import { forgetLab, recordLab } from '../../cluster/record.js';
import { kubectlHints } from '../kubectl-hints.js';

const USAGE = `usage: violin-lab up [--vms N] [--keep]

  start the lab: API server + etcd, OVS fabric, OFC, operator, agents, KubeVirt stand-in,
  and N VMs running the bank (namespace bank, labels app=bank); runs until Ctrl-C

  --vms N   bank VMs to start (default 4; 0 starts none)
  --keep    keep the lab dir (logs) and its snapshots' bundles after Ctrl-C
`;

/** Set in the lab's own session: the child `up` that runs the lab. */
const IN_SESSION = 'VIOLIN_LAB_UP_SESSION';

/** Runs this same command again as the leader of a new session; forwards the first SIGINT or SIGTERM to it. */
function runInOwnSession(): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, [IN_SESSION]: '1' },
  });
  let forwarded = false;
  const forward = (signal: NodeJS.Signals) => {
    // Ctrl-C can reach this process twice (from the terminal and relayed by npx or tsx): one stop is enough.
    if (forwarded) return;
    forwarded = true;
    child.kill(signal);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`violin-lab up: ${errorMessage(error)}\n`);
      resolve(1);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** Every error of a failed teardown, not only the summary. */
function describe(error: unknown): string {
  if (error instanceof AggregateError)
    return [error.message, ...error.errors.map((e) => `  ${errorMessage(e)}`)].join('\n');
  return errorMessage(error);
}

async function up(argv: string[]): Promise<number> {
  const flags = parseCommandFlags('violin-lab up', USAGE, argv, {
    vms: { type: 'string' },
    keep: { type: 'boolean' },
  });
  if (typeof flags === 'number') return flags;
  const { values } = flags;
  const vms = Number(values.vms ?? 4);
  if (!Number.isInteger(vms) || vms < 0 || vms > 16)
    throw new Error(`--vms: expected 0..16, got '${values.vms}'`);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  // From the start: a Ctrl-C while the lab comes up stops it once it is up, instead of killing
  // this process and leaving the lab's processes behind.
  const stopped = untilSignal();
  const lab = await startLabCluster({ name: 'lab', keepDir: values.keep ?? false, log: say });
  await recordLab(lab);
  let bank: BankService | undefined;
  try {
    if (vms > 0) {
      say(`deploying the bank: ${vms} VMs`);
      bank = await deployBank(lab, { namespace: 'bank', vms, labels: { app: 'bank' } });
      say(`bank running: ${bank.members.map((m) => `${m.name} ${m.ip}`).join(', ')}`);
    }
    for (const line of kubectlHints(lab, `${lab.dir}/logs/{ofc,operator,agent-<node>}.log`)) say(line);
    say('press Ctrl-C to stop the lab');
    await stopped;
  } finally {
    say('stopping the lab');
    await bank?.stop();
    await lab.stop();
    await forgetLab(lab.name);
  }
  return 0;
}

export const command: Command = {
  summary: 'run the local lab (API server, OVS fabric, OFC, operator, agents, KubeVirt stand-in, VMs)',
  async run(argv) {
    if (!process.env[IN_SESSION]) return runInOwnSession();
    try {
      return await up(argv);
    } catch (error) {
      process.stderr.write(`violin-lab up: ${describe(error)}\n`);
      return 1;
    }
  },
};
