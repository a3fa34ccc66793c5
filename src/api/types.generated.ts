// GENERATED from crds/*.yaml by src/api/codegen/generate.ts: do not edit. Change the CRD, then run
// `npx tsx src/api/codegen/generate.ts`; src/api/codegen/generate.test.ts fails while this file is stale.
export type * from './types/distributed-snapshot.generated.js';
export type * from './types/snapshot-bundle.generated.js';
export type * from './types/snapshot-restore.generated.js';
export type * from './types/snapshot-schedule.generated.js';
export type * from './types/snapshot-storage-location.generated.js';
