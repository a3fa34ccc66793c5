// `violin lab up|down`: the whole system on this machine (lab/cluster), for a
// person to explore with kubectl. `up` runs in the foreground (the KubeVirt
// stand-in lives in this process) until Ctrl-C; `down` cleans up after an `up`
// that was killed before it could (by the PIDs and names it recorded).

import { parseCommandFlags } from '../flags.js';
import type { Command } from '../main.js';
import { deployBank, type BankService } from '../../../lab/cluster/bank.js';
import { startLabCluster, type LabCluster } from '../../../lab/cluster/cluster.js';
import { forgetLab, recordLab, tearDownRecordedLab } from '../../../lab/cluster/record.js';
import { untilSignal } from '../signals.js';
import { errorMessage } from '../../errors.js';

const USAGE = `usage: violin lab up [--vms N] [--keep]
       violin lab down

  up      start the lab: API server + etcd, OVS fabric, OFC, operator, agents, KubeVirt stand-in,
          and N VMs running the bank (namespace bank, labels app=bank); runs until Ctrl-C
    --vms N   bank VMs to start (default 4; 0 starts none)
    --keep    keep the lab dir (logs, bundles) after Ctrl-C
  down    stop what a killed 'violin lab up' left running (processes by PID, namespace, temp dir)
`;

/** What a person needs to use the lab with kubectl. */
export function usageLines(lab: LabCluster): string[] {
  return [
    `lab ${lab.name} is up (dir ${lab.dir})`,
    `  export KUBECONFIG=${lab.kubeconfigPath}`,
    `  ${lab.kubectl} get nodes --show-labels`,
    `  ${lab.kubectl} get vmi -A`,
    `  ${lab.kubectl} apply -f examples/snapshot.yaml && ${lab.kubectl} get dsnap -n bank -w`,
    `  logs: ${lab.dir}/logs/{ofc,operator,agent-<node>}.log, VM consoles: ${lab.dir}/n/<node>/vms/<ns>/<vm>/serial.log`,
  ];
}

async function up(argv: string[]): Promise<number> {
  const flags = parseCommandFlags('lab up', USAGE, argv, {
    vms: { type: 'string' },
    keep: { type: 'boolean' },
  });
  if (typeof flags === 'number') return flags;
  const { values } = flags;
  const vms = Number(values.vms ?? 4);
  if (!Number.isInteger(vms) || vms < 0 || vms > 16)
    throw new Error(`--vms: expected 0..16, got '${values.vms}'`);
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const lab = await startLabCluster({ name: 'lab', keepDir: values.keep ?? false, log: say });
  await recordLab(lab);
  let bank: BankService | undefined;
  try {
    if (vms > 0) {
      say(`deploying the bank: ${vms} VMs`);
      bank = await deployBank(lab, { namespace: 'bank', vms, labels: { app: 'bank' } });
      say(`bank running: ${bank.members.map((m) => `${m.name} ${m.ip}`).join(', ')}`);
    }
    for (const line of usageLines(lab)) say(line);
    say('press Ctrl-C to stop the lab');
    await untilSignal();
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
    const [sub, ...rest] = argv;
    try {
      if (sub === 'up') return await up(rest);
      if (sub === 'down') {
        const report = await tearDownRecordedLab('lab');
        process.stdout.write(`${report}\n`);
        return 0;
      }
      process.stdout.write(USAGE);
      return sub === '--help' || sub === '-h' || sub === 'help' ? 0 : 2;
    } catch (error) {
      process.stderr.write(`violin lab: ${errorMessage(error)}\n`);
      return 1;
    }
  },
};
