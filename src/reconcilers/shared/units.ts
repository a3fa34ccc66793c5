// Units as users write them in specs (Kubernetes quantities, Go-style
// durations) and as printer columns show them.

const QUANTITY_FACTORS: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  K: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
};

/** Bytes of a Kubernetes quantity ('128Mi', '1Gi', '512M', '1073741824') or a plain byte count. */
export function parseQuantityBytes(quantity: string | number): number {
  if (typeof quantity === 'number') return quantity;
  const match = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T)?$/.exec(quantity.trim());
  if (!match) throw new Error(`${JSON.stringify(quantity)} is not a Kubernetes quantity`);
  return Math.round(Number(match[1]) * (QUANTITY_FACTORS[match[2] ?? ''] ?? 1));
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a Go-style duration ('90s', '10m', '1h30m', '500ms'), as the CRD's validation accepts them. */
export function parseDurationMs(duration: string): number {
  const part = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/y;
  let total = 0;
  let offset = 0;
  while (offset < duration.length) {
    part.lastIndex = offset;
    const match = part.exec(duration);
    if (!match) throw new Error(`${JSON.stringify(duration)} is not a duration such as 90s, 10m or 1h30m`);
    total += Number(match[1]) * (DURATION_UNITS[match[2] ?? ''] ?? 0);
    offset = part.lastIndex;
  }
  if (duration.length === 0) throw new Error('an empty string is not a duration');
  return Math.round(total);
}

/** '120ms', '12.4s', '3m5s': short and exact enough for a printer column. */
export function formatDurationMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1).replace(/\.0$/, '')}s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}
