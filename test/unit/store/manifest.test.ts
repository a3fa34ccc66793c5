import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../../src/store/digest.js';
import { BundleError } from '../../../src/store/errors.js';
import type { BundleManifest } from '../../../src/store/manifest.js';
import { BUNDLE_API_VERSION, parseManifest, sealManifest } from '../../../src/store/manifest.js';
import { sampleContent } from './sample-bundle.js';

const committedAt = new Date('2026-11-25T01:00:05.000Z');

function sealed(): BundleManifest {
  return sealManifest(sampleContent(), committedAt);
}

/** The manifest as JSON with one edit applied and the integrity digest left as it was. */
function edited(edit: (m: Record<string, unknown> & { vms: Record<string, unknown>[] }) => void): string {
  const m = JSON.parse(JSON.stringify(sealed()));
  edit(m);
  return JSON.stringify(m);
}

function refusal(text: string | Uint8Array): BundleError {
  try {
    parseManifest(text);
  } catch (err) {
    if (err instanceof BundleError) return err;
    throw new Error(`parseManifest threw something other than a BundleError: ${String(err)}`, { cause: err });
  }
  throw new Error('parseManifest accepted the manifest');
}

describe('bundle manifest', () => {
  it('reads back what was sealed, with version, commit time and integrity digest', () => {
    const manifest = sealed();
    expect(manifest.apiVersion).toBe(BUNDLE_API_VERSION);
    expect(manifest.committedAt).toBe('2026-11-25T01:00:05.000Z');
    expect(manifest.integrity.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(parseManifest(JSON.stringify(manifest, null, 2))).toEqual(manifest);
  });

  it('does not care about key order or whitespace, only content', () => {
    const manifest = sealed();
    const reordered = JSON.stringify(JSON.parse(canonicalJson(manifest)));
    expect(parseManifest(reordered)).toEqual(manifest);
  });

  it('refuses a manifest edited after commit, saying so', () => {
    const err = refusal(edited((m) => ((m.vms[0]!.timeline as { downtimeMs: number }).downtimeMs = 1)));
    expect(err.code).toBe('Integrity');
    expect(err.message).toMatch(/manifest\.json was modified after commit/);
    expect(err.file).toBe('manifest.json');
  });

  it('names the bundle version it cannot read', () => {
    const err = refusal(edited((m) => (m.apiVersion = 'violin.dev/bundle/v2')));
    expect(err.message).toContain('apiVersion');
    expect(err.message).toContain('violin.dev/bundle/v2');
    expect(err.message).toContain(BUNDLE_API_VERSION);
  });

  it.each([
    [
      'a missing digest',
      (m: { vms: Record<string, unknown>[] }) => delete (m.vms[1]!.image as Record<string, unknown>).digest,
      'vms[1].image.digest',
    ],
    [
      'a malformed digest',
      (m: { vms: Record<string, unknown>[] }) =>
        ((m.vms[0]!.image as Record<string, unknown>).digest = 'md5:abc'),
      'vms[0].image.digest',
    ],
    [
      'a path out of the bundle',
      (m: { vms: Record<string, unknown>[] }) =>
        ((m.vms[0]!.image as Record<string, unknown>).path = '../../etc/shadow'),
      'vms[0].image.path',
    ],
    [
      'an absolute path',
      (m: { vms: Record<string, unknown>[] }) =>
        ((m.vms[0]!.image as Record<string, unknown>).path = '/etc/shadow'),
      'vms[0].image.path',
    ],
    [
      'a negative size',
      (m: { vms: Record<string, unknown>[] }) => ((m.vms[0]!.image as Record<string, unknown>).size = -1),
      'vms[0].image.size',
    ],
    [
      'an upper-case MAC',
      (m: { vms: Record<string, unknown>[] }) => (m.vms[0]!.mac = '52:54:00:AA:00:00'),
      'vms[0].mac',
    ],
    [
      'T_i before S_i',
      (m: { vms: Record<string, unknown>[] }) =>
        ((m.vms[0]!.timeline as Record<string, unknown>).capturedAt = '2026-11-25T00:00:00Z'),
      'vms[0].timeline.capturedAt',
    ],
    [
      'a time that is not RFC 3339',
      (m: { vms: Record<string, unknown>[] }) =>
        ((m.vms[0]!.timeline as Record<string, unknown>).snapshotStartedAt = 'yesterday'),
      'vms[0].timeline.snapshotStartedAt',
    ],
    [
      'an unknown field',
      (m: { vms: Record<string, unknown>[] }) => (m.vms[0]!.colour = 'red'),
      'vms[0].colour',
    ],
    ['the same VM twice', (m: { vms: Record<string, unknown>[] }) => m.vms.push(m.vms[0]!), 'vms[2]'],
    ['no VMs', (m: { vms: Record<string, unknown>[] }) => m.vms.splice(0), 'vms'],
    [
      'an unknown network mode',
      (m: Record<string, unknown>) => ((m.snapshot as Record<string, unknown>).networkMode = 'Flood'),
      'snapshot.networkMode',
    ],
    [
      'two files at one path',
      (m: Record<string, unknown>) => ((m.flows as Record<string, unknown>).path = 'channel-state.json'),
      'flows.path',
    ],
  ])('refuses %s, naming the field', (_what, edit, field) => {
    const err = refusal(
      edited(edit as (m: Record<string, unknown> & { vms: Record<string, unknown>[] }) => void),
    );
    expect(err.code).toBe('InvalidManifest');
    expect(err.message).toContain(`manifest.json: ${field} `);
  });

  it('refuses bytes that are not JSON', () => {
    const err = refusal('{"apiVersion": ');
    expect(err.code).toBe('InvalidManifest');
    expect(err.message).toMatch(/manifest\.json is not valid JSON/);
  });

  it('never commits what it could not read back', () => {
    const content = sampleContent();
    content.vms[0]!.mac = 'not-a-mac';
    expect(() => sealManifest(content, committedAt)).toThrow(/vms\[0\]\.mac/);
  });
});

describe('bundle manifest against arbitrary input (property-based)', () => {
  const refusedClearly = (text: string | Uint8Array) => {
    const err = refusal(text);
    expect(err.message).toMatch(/^manifest\.json/);
    expect(err.message.length).toBeLessThan(2000);
  };

  it('refuses random bytes with a clear error, never a crash', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => refusedClearly(bytes)));
  });

  it('refuses random JSON with a clear error', () => {
    fc.assert(fc.property(fc.jsonValue(), (value) => refusedClearly(JSON.stringify(value) ?? 'null')));
  });

  it('refuses random JSON that claims the right version', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (fields) =>
        refusedClearly(JSON.stringify({ ...fields, apiVersion: BUNDLE_API_VERSION })),
      ),
    );
  });

  // Every place a value lives in a valid manifest, as a path of keys.
  function leafPaths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
    if (typeof value !== 'object' || value === null) return [prefix];
    const keys = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
    return [prefix, ...keys.flatMap((k) => leafPaths((value as Record<string, unknown>)[k], [...prefix, k]))];
  }
  const paths = leafPaths(JSON.parse(JSON.stringify(sealed()))).filter((p) => p.length > 0);

  it('refuses every mutation of a sealed manifest: a change anywhere is detected', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...paths),
        fc.oneof(fc.constant(undefined), fc.jsonValue()),
        (path, replacement) => {
          const manifest = JSON.parse(JSON.stringify(sealed()));
          let parent = manifest;
          for (const key of path.slice(0, -1)) parent = parent[key];
          const key = path[path.length - 1]!;
          const before = canonicalJson(manifest);
          if (replacement === undefined) {
            if (Array.isArray(parent)) parent.splice(key as number, 1);
            else delete parent[key];
          } else {
            parent[key] = replacement;
          }
          const text = JSON.stringify(manifest);
          fc.pre(canonicalJson(JSON.parse(text)) !== before);
          refusedClearly(text);
        },
      ),
      { numRuns: 500 },
    );
  });

  it('round-trips any captured VMI content', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (spec) => {
        const content = sampleContent();
        content.vms[0]!.vmi = { kind: 'VirtualMachineInstance', spec };
        const manifest = sealManifest(content, committedAt);
        expect(parseManifest(JSON.stringify(manifest))).toEqual(JSON.parse(JSON.stringify(manifest)));
      }),
    );
  });
});
