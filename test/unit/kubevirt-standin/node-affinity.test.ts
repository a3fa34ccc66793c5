// The stand-in's reading of a launcher pod's placement, as kube-scheduler's:
// nodeSelector and required node affinity filter, preferred node affinity
// ranks, and a migration's target keeps only what is required (plus its
// addedNodeSelector, under the VMI's own keys).
import { describe, expect, it } from 'vitest';

import type { VmiSpec } from '../../../src/kubevirt/types.js';
import {
  hasRequiredPlacement,
  hostnameAskedFor,
  meetsRequired,
  mostPreferred,
  type NodeFacts,
} from '../../../lab/kubevirt-standin/node-affinity.js';

const node = (name: string, labels: Record<string, string> = {}): NodeFacts => ({
  name,
  labels: { 'kubernetes.io/hostname': name, ...labels },
});
const w1 = node('w1', { zone: 'a', cores: '4' });
const w2 = node('w2', { zone: 'b', cores: '16' });
const snap = node('snap', { 'violin.dev/snapshot-host': 'true' });

const preferring = (host: string, weight = 100): VmiSpec => ({
  affinity: {
    nodeAffinity: {
      preferredDuringSchedulingIgnoredDuringExecution: [
        {
          weight,
          preference: {
            matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [host] }],
          },
        },
      ],
    },
  },
});
const requiring = (...terms: { key: string; operator: string; values?: string[] }[][]): VmiSpec => ({
  affinity: {
    nodeAffinity: {
      requiredDuringSchedulingIgnoredDuringExecution: {
        nodeSelectorTerms: terms.map((matchExpressions) => ({ matchExpressions })),
      },
    },
  },
});

describe('meetsRequired', () => {
  it.each([
    { name: 'nothing asked', spec: {}, node: w1, want: true },
    { name: 'nodeSelector met', spec: { nodeSelector: { zone: 'a' } }, node: w1, want: true },
    { name: 'nodeSelector not met', spec: { nodeSelector: { zone: 'a' } }, node: w2, want: false },
    { name: 'a preferred node is no requirement', spec: preferring('w1'), node: w2, want: true },
    { name: 'In', spec: requiring([{ key: 'zone', operator: 'In', values: ['b'] }]), node: w2, want: true },
    {
      name: 'NotIn',
      spec: requiring([{ key: 'zone', operator: 'NotIn', values: ['b'] }]),
      node: w2,
      want: false,
    },
    { name: 'Exists', spec: requiring([{ key: 'cores', operator: 'Exists' }]), node: snap, want: false },
    {
      name: 'DoesNotExist',
      spec: requiring([{ key: 'cores', operator: 'DoesNotExist' }]),
      node: snap,
      want: true,
    },
    { name: 'Gt', spec: requiring([{ key: 'cores', operator: 'Gt', values: ['8'] }]), node: w2, want: true },
    { name: 'Lt', spec: requiring([{ key: 'cores', operator: 'Lt', values: ['8'] }]), node: w2, want: false },
    {
      name: 'terms are ORed',
      spec: requiring(
        [{ key: 'zone', operator: 'In', values: ['x'] }],
        [{ key: 'zone', operator: 'In', values: ['a'] }],
      ),
      node: w1,
      want: true,
    },
    {
      name: "a term's expressions are ANDed",
      spec: requiring([
        { key: 'zone', operator: 'In', values: ['a'] },
        { key: 'cores', operator: 'Gt', values: ['8'] },
      ]),
      node: w1,
      want: false,
    },
    { name: 'no terms match no node', spec: requiring(), node: w1, want: false },
  ])('$name', ({ spec, node, want }) => {
    expect(meetsRequired(spec as VmiSpec, node)).toBe(want);
  });

  it("a migration adds its addedNodeSelector, the VMI's own key winning a collision", () => {
    expect(meetsRequired({}, snap, { 'violin.dev/snapshot-host': 'true' })).toBe(true);
    expect(meetsRequired({}, w1, { 'violin.dev/snapshot-host': 'true' })).toBe(false);
    // Pinned by nodeSelector to w1: no snapshot host can ever take it (why a restore no longer pins).
    const pinned = { nodeSelector: { 'kubernetes.io/hostname': 'w1' } };
    expect(meetsRequired(pinned, snap, { 'violin.dev/snapshot-host': 'true' })).toBe(false);
    expect(meetsRequired(preferring('w1'), snap, { 'violin.dev/snapshot-host': 'true' })).toBe(true);
  });
});

describe('ranking and names', () => {
  it('the most preferred nodes, all of them when nothing is preferred', () => {
    expect(mostPreferred(preferring('w2'), [w1, w2]).map((n) => n.name)).toEqual(['w2']);
    expect(mostPreferred({}, [w1, w2]).map((n) => n.name)).toEqual(['w1', 'w2']);
    expect(mostPreferred(preferring('gone'), [w1, w2]).map((n) => n.name)).toEqual(['w1', 'w2']);
  });

  it('a preferred node is no required placement; a nodeSelector or required affinity is', () => {
    expect(hasRequiredPlacement(preferring('w1'))).toBe(false);
    expect(hasRequiredPlacement({ nodeSelector: { zone: 'a' } })).toBe(true);
    expect(hasRequiredPlacement(requiring([{ key: 'zone', operator: 'Exists' }]))).toBe(true);
    expect(hasRequiredPlacement({}, { 'violin.dev/snapshot-host': 'true' })).toBe(true);
  });

  it('the host a VMI names: required first, else its heaviest preferred hostname term', () => {
    expect(hostnameAskedFor({ nodeSelector: { 'kubernetes.io/hostname': 'w1' }, ...preferring('w2') })).toBe(
      'w1',
    );
    expect(hostnameAskedFor(preferring('w2'))).toBe('w2');
    expect(hostnameAskedFor({})).toBeUndefined();
  });
});
