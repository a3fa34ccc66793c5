// Moved to lab/ovs/require-tool.ts: the lab's OVS fixture needs it, and lab code must not import test/support.
export * from '../../lab/ovs/require-tool.js';
