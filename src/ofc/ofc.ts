// The OFC process: switch listener, registry, epoch engine and control API
// wired together. `violin ofc` runs it; integration tests start it in-process.
import type { Logger } from 'pino';

import type { BufferPortFactory } from './buffer/buffer-port.js';
import { ControlServer } from './control/server.js';
import { DEFAULT_OFC_CONTROL_ADDRESS, DEFAULT_OFC_SWITCH_LISTEN } from '../api/constants.js';
import { EpochEngine } from './epoch/engine.js';
import type { HeldLimits } from './epoch/held-limits.js';
import { OfcMetrics } from './metrics.js';
import type { DatapathSync } from './switch/datapath-sync.js';
import { SwitchListener } from './switch/listener.js';
import type { TlsMaterial } from './switch/listener.js';
import { SwitchRegistry } from './switch/registry.js';

export interface OfcOptions {
  /** Where switches connect: `tcp:HOST:PORT`, `ssl:HOST:PORT` or `unix:PATH`. */
  listen?: string;
  /** Needed for `ssl:`. */
  tls?: TlsMaterial;
  /** Control API `HOST:PORT`. */
  control?: string;
  logger: Logger;
  echoIntervalMs?: number;
  echoTimeoutMs?: number;
  requestTimeoutMs?: number;
  bridgeWaitMs?: number;
  baseForwarding?: 'normal' | 'none';
  /** The datapath buffer tier's ports (e.g. MiddleboxBufferPorts); without it that tier answers 501. */
  bufferPorts?: BufferPortFactory;
  /** What an advance waits for after its barrier (OvsRevalidatorSync); see datapath-sync.ts. */
  datapathSync?: DatapathSync;
  /** Caps on held frames across snapshots and per VM (epoch/held-limits.ts). */
  heldLimits?: HeldLimits;
}

export interface RunningOfc {
  engine: EpochEngine;
  registry: SwitchRegistry;
  metrics: OfcMetrics;
  /** OVS controller target for the switch listener (real port when 0 was asked for). */
  switchTarget: string;
  /** host:port of the control API. */
  controlAddress: string;
  /** Aborts armed snapshots (releasing held frames), then closes switches and listeners. */
  stop(reason: string): Promise<void>;
}

export async function startOfc(options: OfcOptions): Promise<RunningOfc> {
  const { logger } = options;
  // The sources are read only when /metrics is scraped, after everything exists.
  const metrics: OfcMetrics = new OfcMetrics({
    switchesConnected: (): number => registry.connectedCount(),
    heldPackets: (): number => engine.heldPackets(),
    heldBytes: (): number => engine.heldBytes(),
    armedSnapshots: (): number => engine.armedSnapshots(),
  });
  const registry: SwitchRegistry = new SwitchRegistry({
    logger,
    metrics,
    echoIntervalMs: options.echoIntervalMs,
    echoTimeoutMs: options.echoTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  const engine: EpochEngine = new EpochEngine(registry, {
    logger,
    metrics,
    bridgeWaitMs: options.bridgeWaitMs,
    baseForwarding: options.baseForwarding,
    bufferPorts: options.bufferPorts,
    datapathSync: options.datapathSync,
    heldLimits: options.heldLimits,
  });
  const switches = await SwitchListener.listen(
    options.listen ?? DEFAULT_OFC_SWITCH_LISTEN,
    (socket) => registry.accept(socket),
    options.tls,
  );
  let control: ControlServer;
  try {
    control = await ControlServer.listen(options.control ?? DEFAULT_OFC_CONTROL_ADDRESS, {
      control: engine,
      logger,
      registry: metrics.registry,
      ready: () => true,
    });
  } catch (error) {
    await switches.close();
    throw error;
  }
  logger.info({ switches: switches.target, control: control.address }, 'OFC listening');
  const running: RunningOfc = {
    engine,
    registry,
    metrics,
    switchTarget: switches.target,
    controlAddress: control.address,
    async stop(reason) {
      // Release held frames while the switches are still connected to take them.
      await engine.shutdown(reason);
      registry.closeAll(reason);
      await Promise.all([switches.close(), control.close()]);
      logger.info({ reason }, 'OFC stopped');
    },
  };
  return running;
}
