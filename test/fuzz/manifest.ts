// The bundle manifest reader as a restore in another cluster meets it: bytes
// from a store nobody here controls. Two kinds of damage: bytes (truncation,
// bit flips: caught by JSON or the integrity digest) and well-formed JSON with
// a field changed and the digest recomputed, as a careless tool or an attacker
// would, so that the schema checks themselves are exercised.
import fc from 'fast-check';

import { BundleError, parseManifest } from '../../src/store/index.js';
import { sealManifest } from '../../src/store/manifest.js';
import { canonicalJson, sha256Digest } from '../../src/store/digest.js';
import { sampleContent } from '../unit/store/sample-bundle.js';
import { chunked, mutatedFrom } from './mutation.js';
import { expectDocumentedError } from './target.js';
import type { FuzzTarget } from './target.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const sealed = JSON.parse(
  JSON.stringify(sealManifest(sampleContent(), new Date('2026-11-25T02:00:00Z'))),
) as Json;

/** Every path to a value in the manifest (objects and arrays included), as lists of keys. */
function paths(value: Json, prefix: (string | number)[] = []): (string | number)[][] {
  const here = prefix.length === 0 ? [] : [prefix];
  if (Array.isArray(value)) return [...here, ...value.flatMap((v, i) => paths(v, [...prefix, i]))];
  if (value !== null && typeof value === 'object')
    return [...here, ...Object.entries(value).flatMap(([k, v]) => paths(v, [...prefix, k]))];
  return here;
}
const fieldPaths = paths(sealed).filter((p) => p[0] !== 'integrity');

const replacement: fc.Arbitrary<Json | undefined> = fc.oneof(
  fc.constant(undefined), // remove the field
  fc.constantFrom<Json>(
    '',
    '../etc/passwd',
    '/abs/path',
    'sha256:00',
    'Buffer',
    'Off',
    '52:54:00:00:00:0G',
    '2026-13-45T00:00:00Z',
  ),
  fc.constantFrom<Json>(-1, 0, 1.5, 2 ** 53, -(2 ** 63), Number.MAX_VALUE, null, true, [], {}),
  fc.string({ maxLength: 10 }),
  fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
  fc.constant('x'.repeat(70_000)),
);

function setField(root: Json, path: (string | number)[], value: Json | undefined): Json {
  const copy = structuredClone(root);
  let node = copy as Record<string | number, Json>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, Json>;
  const last = path[path.length - 1] as string | number;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

/** A manifest with 1 to 3 fields changed and its integrity digest recomputed over the result. */
const resealed = fc
  .array(fc.tuple(fc.constantFrom(...fieldPaths), replacement), { minLength: 1, maxLength: 3 })
  .map((edits) => {
    let manifest = sealed;
    for (const [path, value] of edits) {
      try {
        manifest = setField(manifest, path, value);
      } catch {
        // An earlier edit removed or replaced this path's parent: the edit has nowhere to go.
      }
    }
    if (manifest !== null && typeof manifest === 'object' && !Array.isArray(manifest)) {
      const { integrity: _integrity, ...unsealed } = manifest;
      manifest = {
        ...manifest,
        integrity: { algorithm: 'sha256-canonical-json', digest: sha256Digest(canonicalJson(unsealed)) },
      };
    }
    return Buffer.from(JSON.stringify(manifest));
  });

const damagedBytes = mutatedFrom([
  Buffer.from(JSON.stringify(sealed)),
  Buffer.from(JSON.stringify(sealed, null, 2)),
]);

export const manifestTarget: FuzzTarget = {
  name: 'manifest',
  description: 'parseManifest on damaged manifest.json bytes and on resealed manifests with fields changed',
  property: () =>
    fc.property(chunked(fc.oneof(resealed, damagedBytes)), (chunks) => {
      const bytes = Buffer.concat(chunks);
      try {
        const manifest = parseManifest(bytes);
        // Accepted: then it must survive the reader a second time, unchanged (no half-validated object).
        const again = parseManifest(JSON.stringify(manifest));
        if (canonicalJson(again) !== canonicalJson(manifest))
          throw new Error('an accepted manifest reads back differently');
      } catch (error) {
        const refusal = expectDocumentedError<BundleError>(
          error,
          [BundleError],
          `parseManifest(${bytes.toString('latin1').slice(0, 2000)})`,
        );
        if (!refusal.message.startsWith('manifest.json')) {
          throw new Error(`refusal does not name the file: ${refusal.message}`, { cause: error });
        }
      }
      return true;
    }),
};
