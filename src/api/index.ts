// The violin.dev/v1alpha1 API: names (constants.ts, written by hand and checked
// against crds/ by a test) and types (types.generated.ts, generated from crds/
// so they cannot drift from what the API server enforces).
export * from './constants.js';
export type * from './types.generated.js';
export * from './values.js';
