// Durations as printer columns show them, and the timeout check both reconcilers
// make. Parsing what users write in specs (quantities, durations) is
// src/api/values.ts's, the API's own reading.

import { durationToMs } from '../../api/values.js';

/** '120ms', '12.4s', '3m5s': short and exact enough for a printer column. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

/** Whether more than `limit` (a spec duration such as '10m') has passed since `startTime`; never before a start. */
export function pastTimeout(limit: string, startTime: string | undefined, now: Date): boolean {
  const started = Date.parse(startTime ?? '');
  return !Number.isNaN(started) && now.getTime() - started > durationToMs(limit);
}
