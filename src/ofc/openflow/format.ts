import type { Instruction, Match } from './types.js';

// Placeholder so that code built on the codec typechecks while the codec is written; replaced next.
export function formatMatch(_match: Match): string {
  throw new Error('formatMatch: not implemented yet');
}

export function formatActions(_instructions: Instruction[]): string {
  throw new Error('formatActions: not implemented yet');
}
