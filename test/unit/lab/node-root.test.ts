// Where a lab node's own paths are on the host (lab/nodes/node-root.ts): the
// e2e reads a node's files through this, so a wrong mapping would make it read
// another directory than the one the node's pods wrote.
import { describe, expect, it } from 'vitest';

import { nodeHostPath } from '../../../lab/nodes/node-root.js';

describe('nodeHostPath', () => {
  it.each([
    ['/var/lib/kubelet/pods', '/lab/node-1/root/var/lib/kubelet/pods'],
    ['/var/lib', '/lab/node-1/root/var/lib'],
    ['/var/run/openvswitch/db.sock', '/lab/node-1/root/run/openvswitch/db.sock'],
    ['/run/kubevirt', '/lab/node-1/root/run/kubevirt'],
    ['/var/run', '/lab/node-1/root/run'],
    ['/var/log/pods', '/lab/node-1/root/var/log/pods'],
  ])('maps %s into the node directory', (nodePath, hostPath) => {
    expect(nodeHostPath('/lab/node-1/root', nodePath)).toBe(hostPath);
  });

  it.each(['/etc/openvswitch', '/usr/bin', '/var/libvirt', '/var/lib/../../etc', '/runner'])(
    "refuses %s, which is the machine's own in every node's view",
    (nodePath) => {
      expect(() => nodeHostPath('/lab/node-1/root', nodePath)).toThrow(
        /not one of a lab node's own directories/,
      );
    },
  );
});
