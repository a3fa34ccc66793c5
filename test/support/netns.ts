// Moved to lab/ovs/netns.ts (the lab builds its fabric on it, and lab code must not import test/support).
export * from '../../lab/ovs/netns.js';
