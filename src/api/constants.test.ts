// The chart and the code must agree on where things listen: the chart's
// defaults (charts/violin/values.yaml) are the code's (constants.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../devenv/repo.js';
import {
  DEFAULT_AGENT_PORT,
  DEFAULT_HEALTH_PROBE_BIND_ADDRESS,
  DEFAULT_METRICS_BIND_ADDRESS,
  DEFAULT_OFC_CONTROL_ADDRESS,
  DEFAULT_OFC_SWITCH_LISTEN,
} from './constants.js';

interface ChartValues {
  operator: { metricsPort: number; healthPort: number };
  ofc: { openflowPort: number; controlPort: number };
  agent: { port: number };
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(':') + 1));

describe('listen defaults', () => {
  it('are the chart defaults', () => {
    const values = load(
      readFileSync(join(repoRoot(), 'charts', 'violin', 'values.yaml'), 'utf8'),
    ) as ChartValues;
    expect(portOf(DEFAULT_METRICS_BIND_ADDRESS)).toBe(values.operator.metricsPort);
    expect(portOf(DEFAULT_HEALTH_PROBE_BIND_ADDRESS)).toBe(values.operator.healthPort);
    expect(portOf(DEFAULT_OFC_SWITCH_LISTEN)).toBe(values.ofc.openflowPort);
    expect(portOf(DEFAULT_OFC_CONTROL_ADDRESS)).toBe(values.ofc.controlPort);
    expect(DEFAULT_AGENT_PORT).toBe(values.agent.port);
  });
});
