// Moved to lab/ovs/ovs.ts (the lab builds its fabric on it, and lab code must not import test/support).
export * from '../../lab/ovs/ovs.js';
