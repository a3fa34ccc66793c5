// Who holds a bridge secure: Open_vSwitch Bridge rows carry their holders in
// `external_ids`, and the first holder's record of the fail mode to go back
// to. The pure part of OpenVswitchDb.secureBridge/releaseBridge: from the row
// read, the row to write.
import type { Row } from './protocol.js';
import { asOptional } from './values.js';

export type FailMode = 'secure' | 'standalone';

/**
 * Bridge `external_ids` that make a bridge secure while snapshots hold it:
 * one `violin.dev/secured-by-<holder>` key per holder (a snapshot's UID), and
 * `violin.dev/fail-mode-before`, the mode the first holder found (`unset` when
 * the column was empty), which the last holder to let go puts back. Kept on the
 * row itself, so any operator process (a restarted one too) sees who holds it.
 */
export const SECURED_BY_KEY_PREFIX = 'violin.dev/secured-by-';
export const FAIL_MODE_BEFORE_KEY = 'violin.dev/fail-mode-before';
const UNSET_FAIL_MODE = 'unset';

/** What releaseBridge did: left it secure for other holders, restored a mode (undefined: cleared), or nothing. */
export type ReleaseOutcome =
  | { kind: 'held'; holders: string[] }
  | { kind: 'restored'; failMode: FailMode | undefined }
  | { kind: 'not-held' };

/** A bridge's fail mode and external_ids, as secureBridge/releaseBridge read and write them. */
export interface SecuredRow {
  failMode: FailMode | undefined;
  externalIds: Record<string, string>;
}

export function securedByKey(holder: string): string {
  return `${SECURED_BY_KEY_PREFIX}${holder}`;
}

/** The holders named by `violin.dev/secured-by-*` keys. */
function holdersOf(externalIds: Record<string, string>): string[] {
  return Object.keys(externalIds)
    .filter((key) => key.startsWith(SECURED_BY_KEY_PREFIX))
    .map((key) => key.slice(SECURED_BY_KEY_PREFIX.length))
    .sort();
}

export function failModeOf(bridge: string, value: Row[string] | undefined): FailMode | undefined {
  const mode = asOptional(value);
  if (mode === undefined || mode === 'secure' || mode === 'standalone') return mode;
  throw new Error(`bridge ${bridge} has an unknown fail_mode ${JSON.stringify(mode)}`);
}

/** The row that makes `holder` one of the bridge's holders; undefined when it already is and the bridge is secure. */
export function securedFor(row: SecuredRow, holder: string): SecuredRow | undefined {
  const key = securedByKey(holder);
  if (row.externalIds[key] !== undefined && row.failMode === 'secure') return undefined;
  const externalIds = { ...row.externalIds, [key]: 'true' };
  // The first holder records the mode to come back to; with holders already there, theirs stands.
  if (holdersOf(row.externalIds).length === 0)
    externalIds[FAIL_MODE_BEFORE_KEY] = row.failMode ?? UNSET_FAIL_MODE;
  return { failMode: 'secure', externalIds };
}

/**
 * The row without `holder`: still secure while other holders remain; the
 * last one restores the recorded mode (clearing the column when it was unset).
 * `next` is undefined when `holder` did not hold the bridge.
 */
export function releasedFor(row: SecuredRow, holder: string): { next?: SecuredRow; outcome: ReleaseOutcome } {
  const key = securedByKey(holder);
  if (row.externalIds[key] === undefined) return { outcome: { kind: 'not-held' } };
  const externalIds = { ...row.externalIds };
  delete externalIds[key];
  const others = holdersOf(externalIds);
  if (others.length > 0)
    return { next: { failMode: row.failMode, externalIds }, outcome: { kind: 'held', holders: others } };
  const before = externalIds[FAIL_MODE_BEFORE_KEY];
  delete externalIds[FAIL_MODE_BEFORE_KEY];
  // A record that is missing or not a mode (edited by hand) says nothing safe to go back to: stay secure.
  const failMode =
    before === UNSET_FAIL_MODE
      ? undefined
      : before === 'standalone' || before === 'secure'
        ? before
        : 'secure';
  return { next: { failMode, externalIds }, outcome: { kind: 'restored', failMode } };
}
