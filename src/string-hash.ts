// A small, stable, non-cryptographic hash of a name: the same text gives the
// same number in every process and release, which is all its users need
// (shortening an object name uniquely, spreading VMs over nodes the same way
// every time). Not for anything an attacker chooses to collide.

/** Java's String.hashCode, as an unsigned 32-bit number. */
export function stringHash(text: string): number {
  let hash = 0;
  for (const ch of text) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return hash;
}
