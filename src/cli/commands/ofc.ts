// `violin ofc`: the OpenFlow controller sidecar. Switches connect to --listen;
// the transaction controller calls --control (docs/ofc-control-api.md).
import { readFileSync } from 'node:fs';

import { parseCommandFlags, seconds, stringFlags } from '../flags.js';
import type { Command } from '../dispatch.js';
import { untilSignal } from '../signals.js';
import { createLogger } from '../../operator/log.js';
import { MiddleboxBufferPorts } from '../../ofc/buffer/middlebox.js';
import { DEFAULT_OFC_CONTROL_ADDRESS, DEFAULT_OFC_SWITCH_LISTEN } from '../../api/constants.js';
import { startOfc } from '../../ofc/ofc.js';
import { OvsRevalidatorSync } from '../../ofc/switch/datapath-sync.js';
import { errorMessage } from '../../errors.js';
import { quantityToBytes } from '../../api/values.js';
import type { HeldLimits } from '../../ofc/epoch/held-limits.js';

const USAGE = `usage: violin ofc [options]

  --listen ADDR        where switches connect: tcp:HOST:PORT, ssl:HOST:PORT or unix:PATH (default ${DEFAULT_OFC_SWITCH_LISTEN})
  --tls-key PATH       PEM private key of the OFC (ssl:)
  --tls-cert PATH      PEM certificate of the OFC (ssl:)
  --tls-ca PATH        PEM CA certificate that signs the switches' certificates (ssl:)
  --control ADDR       control API and /healthz, /readyz, /metrics: HOST:PORT (default ${DEFAULT_OFC_CONTROL_ADDRESS})
  --base-forwarding M  normal: keep a table-0 NORMAL miss flow on every bridge (OVS flushes flows when
                       a bridge gains or loses its controller); none: leave forwarding to the bridge's owner (default normal)
  --datapath-buffer    enable the datapath buffer tier (bufferTier: datapath): a middlebox tap on every
                       bridge holds Type-3 frames (needs ovs-vsctl on this host; Go builds the middlebox once)
  --ovsdb REMOTE       ovs-vsctl --db remote for the buffer ports (default: ovs-vsctl's own)
  --ovs-netns NAME     network namespace where ovs-vswitchd runs, when not this one (the lab)
  --datapath-sync CTL  ovs-vswitchd control sockets (comma-separated paths, e.g. /var/run/openvswitch/
                       ovs-vswitchd.<pid>.ctl) of the bridges' switches, on this host: an epoch advance then
                       purges each one's datapath flows (\`ovs-appctl revalidator/purge\`): a barrier confirms the flow
                       tables but not the flows OVS has cached in its datapath (docs/ofc.md, "Datapath sync")
  --max-held-bytes Q   cap on the Type-3 frames held in this process across all snapshots (a quantity:
                       256Mi); reaching it aborts the snapshot that did, and an arm asking for a larger
                       bufferLimit is refused (default: half of --memory-limit, else none)
  --memory-limit Q     this container's memory limit (the chart passes limits.memory): the default cap is half
  --max-held-bytes-per-vm Q
                       cap on the frames held for any one receiving VM (default none)
  --echo-interval S    seconds of silence before probing a switch with ECHO_REQUEST (default 5)
  --echo-timeout S     seconds of silence after which a switch connection is closed (default 15)
  --log-level LEVEL    pino level (env LOG_LEVEL; default info)
`;

function quantity(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  try {
    const bytes = quantityToBytes(value);
    if (bytes > 0) return bytes;
  } catch {
    // reported below
  }
  throw new Error(`--${flag}: expected a positive quantity of bytes such as 256Mi, got '${value}'`);
}

/** The caps on held frames: explicit, or half the container's memory (the rest is Node's). */
function heldLimits(total?: string, perVm?: string, memoryLimit?: string): HeldLimits {
  const memory = quantity('memory-limit', memoryLimit);
  return {
    totalBytes:
      quantity('max-held-bytes', total) ?? (memory === undefined ? undefined : Math.floor(memory / 2)),
    perVmBytes: quantity('max-held-bytes-per-vm', perVm),
  };
}

export const command: Command = {
  summary: 'run the OpenFlow controller (switch sessions, epoch engine, control API)',
  async run(argv) {
    const flags = parseCommandFlags('violin ofc', USAGE, argv, {
      ...stringFlags(
        'listen',
        'control',
        'tls-key',
        'tls-cert',
        'tls-ca',
        'echo-interval',
        'base-forwarding',
        'ovsdb',
        'ovs-netns',
        'datapath-sync',
        'echo-timeout',
        'max-held-bytes',
        'max-held-bytes-per-vm',
        'memory-limit',
        'log-level',
      ),
      'datapath-buffer': { type: 'boolean' },
    });
    if (typeof flags === 'number') return flags;
    const { values } = flags;
    const logger = createLogger({ component: 'violin-ofc', level: values['log-level'] });
    let ofc;
    try {
      const tlsFiles = [values['tls-key'], values['tls-cert'], values['tls-ca']];
      if (tlsFiles.some((f) => f !== undefined) && tlsFiles.some((f) => f === undefined)) {
        throw new Error('--tls-key, --tls-cert and --tls-ca go together');
      }
      const [key, cert, ca] = tlsFiles;
      const baseForwarding = values['base-forwarding'] ?? 'normal';
      if (baseForwarding !== 'normal' && baseForwarding !== 'none') {
        throw new Error(`--base-forwarding: expected normal or none, got '${baseForwarding}'`);
      }
      ofc = await startOfc({
        listen: values.listen,
        baseForwarding,
        tls:
          key && cert && ca
            ? { key: readFileSync(key), cert: readFileSync(cert), ca: readFileSync(ca) }
            : undefined,
        control: values.control,
        bufferPorts: values['datapath-buffer']
          ? new MiddleboxBufferPorts({ logger, ovsdb: values.ovsdb, netns: values['ovs-netns'] })
          : undefined,
        datapathSync: values['datapath-sync']
          ? new OvsRevalidatorSync(values['datapath-sync'].split(',').filter((p) => p !== ''))
          : undefined,
        echoIntervalMs: seconds('echo-interval', values['echo-interval'], 5),
        echoTimeoutMs: seconds('echo-timeout', values['echo-timeout'], 15),
        heldLimits: heldLimits(
          values['max-held-bytes'],
          values['max-held-bytes-per-vm'],
          values['memory-limit'],
        ),
        logger,
      });
    } catch (error) {
      process.stderr.write(`violin ofc: ${errorMessage(error)}\n`);
      return 1;
    }
    const running = ofc;
    // SIGTERM (kubelet, `kill`): abort armed snapshots so every held frame is
    // released while the switches are still connected, then close.
    const signal = await untilSignal();
    await running.stop(`OFC received ${signal}`).catch((error: unknown) => {
      logger.error({ error: errorMessage(error) }, 'unclean stop');
    });
    return 0;
  },
};
