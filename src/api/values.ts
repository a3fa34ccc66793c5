// The two string-encoded values of the API, as numbers: spec.network.bufferLimit
// (a Kubernetes quantity, or a byte count) and spec.timeout (a Go-style duration
// restricted to ms, s, m, h). The CRD's CEL rules already refuse bad values at
// the API server; these parsers throw on them too, so code that reads objects
// from elsewhere (a bundle, a test) cannot smuggle one through.

const BINARY_SUFFIXES: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL_SUFFIXES: Record<string, number> = {
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

const QUANTITY =
  /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)|[eE]([+-]?[0-9]+))?$/;

/** Bytes in a Kubernetes quantity (`64Mi`, `1.5Gi`, `500M`, `1e6`) or a plain byte count, rounded up as Kubernetes does. */
export function quantityToBytes(value: number | string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`not a byte count: ${value}`);
    return value;
  }
  const match = QUANTITY.exec(value);
  if (!match) throw new Error(`not a Kubernetes quantity: '${value}' (expected e.g. 64Mi, 1Gi, 500M)`);
  const [, number, suffix, exponent] = match;
  const multiplier =
    exponent !== undefined
      ? 10 ** Number(exponent)
      : (BINARY_SUFFIXES[suffix ?? ''] ?? DECIMAL_SUFFIXES[suffix ?? ''] ?? 1);
  return Math.ceil(Number(number) * multiplier);
}

const DURATION = /^([0-9]+(?:\.[0-9]+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration such as `90s`, `10m`, `1h30m` or `1.5h` (the form spec.timeout accepts). */
export function durationToMs(value: string): number {
  if (!DURATION.test(value)) throw new Error(`not a duration: '${value}' (expected e.g. 90s, 10m, 1h30m)`);
  let total = 0;
  for (const [, amount, unit] of value.matchAll(DURATION_PART))
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? 0);
  return Math.round(total);
}
