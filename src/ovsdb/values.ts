// OVSDB's JSON value notation (RFC 7047 section 5.1) and its plain-JS form.
//
// On the wire an atom is a JSON string, number or boolean, or a tagged pair
// ["uuid", "…"] / ["named-uuid", "…"]; a set is ["set", [atoms]] (or a bare
// atom when it has exactly one element); a map is ["map", [[key, value], …]].
// In JS: atoms are string | number | boolean | Uuid | NamedUuid, sets are
// arrays, maps are Map objects (plain objects are accepted when encoding, as
// most maps are string→string like external_ids).

/** A malformed OVSDB value: names what was wrong and where. */
export class OvsdbValueError extends Error {
  override name = 'OvsdbValueError';
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NAMED_UUID_PATTERN = /^[_a-zA-Z][_a-zA-Z0-9]*$/;

/** A row's UUID, `["uuid", "…"]` on the wire. */
export class Uuid {
  constructor(readonly value: string) {
    if (!UUID_PATTERN.test(value)) throw new OvsdbValueError(`not a UUID: ${JSON.stringify(value)}`);
  }

  toString(): string {
    return this.value;
  }
}

/** A reference to a row inserted earlier in the same transaction, `["named-uuid", "…"]`. */
export class NamedUuid {
  constructor(readonly name: string) {
    if (!NAMED_UUID_PATTERN.test(name))
      throw new OvsdbValueError(`not a valid named-uuid: ${JSON.stringify(name)}`);
  }
}

export type Atom = string | number | boolean | Uuid | NamedUuid;
export type OvsdbValue = Atom | Atom[] | Map<Atom, Atom>;
/** What callers may pass where a value is expected: a plain object stands for a string-keyed map. */
export type OvsdbValueInput = OvsdbValue | Record<string, Atom>;

export type WireAtom = string | number | boolean | ['uuid', string] | ['named-uuid', string];
export type WireValue = WireAtom | ['set', WireAtom[]] | ['map', [WireAtom, WireAtom][]];

function encodeAtom(atom: Atom, where: string): WireAtom {
  if (atom instanceof Uuid) return ['uuid', atom.value];
  if (atom instanceof NamedUuid) return ['named-uuid', atom.name];
  if (typeof atom === 'string' || typeof atom === 'boolean') return atom;
  if (typeof atom === 'number' && Number.isFinite(atom)) return atom;
  throw new OvsdbValueError(`${where}: ${String(atom)} is not an OVSDB atom`);
}

/** JS → wire. Arrays become sets, Maps and plain objects become maps. */
export function encodeValue(value: OvsdbValueInput, where = 'value'): WireValue {
  if (Array.isArray(value))
    return ['set', value.map((atom, index) => encodeAtom(atom, `${where}[${index}]`))];
  if (value instanceof Map) {
    return [
      'map',
      [...value].map(([key, item]) => [encodeAtom(key, `${where} key`), encodeAtom(item, `${where} value`)]),
    ];
  }
  if (
    value !== null &&
    typeof value === 'object' &&
    !(value instanceof Uuid) &&
    !(value instanceof NamedUuid)
  ) {
    return [
      'map',
      Object.entries(value).map(
        ([key, item]) => [key, encodeAtom(item, `${where}.${key}`)] as [WireAtom, WireAtom],
      ),
    ];
  }
  return encodeAtom(value, where);
}

function decodeAtom(wire: unknown, where: string): Atom {
  if (typeof wire === 'string' || typeof wire === 'boolean') return wire;
  if (typeof wire === 'number') return wire;
  if (Array.isArray(wire) && wire.length === 2 && typeof wire[1] === 'string') {
    if (wire[0] === 'uuid') return new Uuid(wire[1]);
    if (wire[0] === 'named-uuid') return new NamedUuid(wire[1]);
  }
  throw new OvsdbValueError(`${where}: ${JSON.stringify(wire)} is not an OVSDB atom`);
}

/** Wire → JS. A bare atom stays an atom: whether it is a one-element set depends on the column's type. */
export function decodeValue(wire: unknown, where = 'value'): OvsdbValue {
  if (Array.isArray(wire) && wire.length === 2 && wire[0] === 'set') {
    const elements: unknown = wire[1];
    if (!Array.isArray(elements)) throw new OvsdbValueError(`${where}: a set's elements must be an array`);
    return elements.map((element, index) => decodeAtom(element, `${where}[${index}]`));
  }
  if (Array.isArray(wire) && wire.length === 2 && wire[0] === 'map') {
    const pairs: unknown = wire[1];
    if (!Array.isArray(pairs)) throw new OvsdbValueError(`${where}: a map's pairs must be an array`);
    const map = new Map<Atom, Atom>();
    pairs.forEach((pair: unknown, index) => {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new OvsdbValueError(`${where}: map pair ${index} is not a [key, value] array`);
      }
      map.set(decodeAtom(pair[0], `${where} key ${index}`), decodeAtom(pair[1], `${where} value ${index}`));
    });
    return map;
  }
  return decodeAtom(wire, where);
}

/** A set column as an array: a bare atom is a set of one (RFC 7047 5.1). */
export function asSet(value: OvsdbValue | undefined): Atom[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) return value;
  if (value instanceof Map) throw new OvsdbValueError('expected a set, got a map');
  return [value];
}

/** An optional column (a set of at most one): its atom, or undefined when empty. */
export function asOptional(value: OvsdbValue | undefined): Atom | undefined {
  const set = asSet(value);
  if (set.length > 1) throw new OvsdbValueError(`expected at most one element, got ${set.length}`);
  return set[0];
}

/** A string→string map column (external_ids, other_config) as a plain object. */
export function asStringMap(value: OvsdbValue | undefined): Record<string, string> {
  if (value === undefined) return {};
  if (!(value instanceof Map)) {
    // An empty map may arrive as an empty set from code that cannot tell them apart.
    if (Array.isArray(value) && value.length === 0) return {};
    throw new OvsdbValueError('expected a map');
  }
  const result: Record<string, string> = {};
  for (const [key, item] of value) {
    if (typeof key !== 'string' || typeof item !== 'string')
      throw new OvsdbValueError('expected a string→string map');
    result[key] = item;
  }
  return result;
}

/** UUIDs of a reference column (set of uuids). */
export function asUuids(value: OvsdbValue | undefined): string[] {
  return asSet(value).map((atom) => {
    if (!(atom instanceof Uuid)) throw new OvsdbValueError(`expected a UUID, got ${JSON.stringify(atom)}`);
    return atom.value;
  });
}
