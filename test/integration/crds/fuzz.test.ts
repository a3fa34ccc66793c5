// Random edits of the examples against the real API server: every answer is
// either acceptance or a refusal (400/422) that names the edited field, one of
// its parents or a field inside it. Never a 500, never a refusal that points
// somewhere else.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DISTRIBUTED_SNAPSHOT, SNAPSHOT_RESTORE, SNAPSHOT_SCHEDULE } from '../../../src/api/constants.js';
import { loadExample, useTestObjects, withField, type JsonObject } from './custom-objects.js';

const t = useTestObjects('crds-fuzz');

/** Every dotted path to a value in `object`, below `prefix`; `objectsOnly` keeps the paths of objects (where a new key can go). */
function paths(object: unknown, prefix: string, objectsOnly = false): string[] {
  const isObject = object !== null && typeof object === 'object' && !Array.isArray(object);
  if (!isObject) return objectsOnly ? [] : [prefix];
  return [prefix, ...Object.entries(object).flatMap(([k, v]) => paths(v, `${prefix}.${k}`, objectsOnly))];
}

const value = fc.oneof(
  fc.constant(undefined), // delete the field
  fc.string({ maxLength: 12 }),
  fc.constantFrom('', '0', '-1', '64Mi', '9Ei', 'file:///', 's3://', 'Buffer', 'In', '10s', '@daily'),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 4 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }),
);

describe.each([
  ['snapshot.yaml', DISTRIBUTED_SNAPSHOT.plural],
  ['restore.yaml', SNAPSHOT_RESTORE.plural],
  ['schedule.yaml', SNAPSHOT_SCHEDULE.plural],
] as const)('random edits of examples/%s', (file, plural) => {
  it('are accepted, or refused with a message naming the edited field, a parent or a field inside it', async () => {
    const example = withField(loadExample(file), 'metadata.namespace', '');
    const editable = paths(example.spec, 'spec');
    const unknownKey = fc.constantFrom('netwrok', 'extra', 'x');
    const edit = fc.record({
      path: fc.oneof(
        fc.constantFrom(...editable),
        fc
          .tuple(fc.constantFrom(...paths(example.spec, 'spec', true)), unknownKey)
          .map(([p, k]) => `${p}.${k}`),
      ),
      value,
    });
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(edit, async ({ path, value: newValue }) => {
        const object: JsonObject = withField(
          withField(example, 'metadata.namespace', t.namespace),
          path,
          newValue,
        );
        let outcome: { code: number; message: string } = { code: 201, message: '' };
        try {
          await t.objects.create(plural, object, { dryRun: 'All', fieldValidation: 'Strict' });
        } catch (err) {
          const { code, body } = err as { code?: number; body?: unknown };
          const message =
            typeof body === 'string' ? ((JSON.parse(body) as { message?: string }).message ?? body) : '';
          outcome = { code: code ?? 0, message };
        }
        if (outcome.code === 201) return;
        refused++;
        expect([400, 422], `${path} = ${JSON.stringify(newValue)}: ${outcome.message}`).toContain(
          outcome.code,
        );
        const segments = path.split('.');
        const ancestors = segments.map((_, i) => segments.slice(0, i + 1).join('.'));
        // A field inside the edited value also says where the problem is: `spec = {}` is refused
        // with "spec.selector: Required value".
        const namesInside = outcome.message.includes(`${path}.`);
        expect(
          namesInside ||
            ancestors.some(
              (a) =>
                outcome.message.includes(`${a}:`) ||
                outcome.message.includes(`${a}[`) ||
                outcome.message.includes(`"${a}`),
            ),
          `${path} = ${JSON.stringify(newValue)} refused without naming it: ${outcome.message}`,
        ).toBe(true);
      }),
      { numRuns: 60 },
    );
    // Most random edits are invalid; a run that refused nothing tested nothing.
    expect(refused).toBeGreaterThan(10);
  });
});
