// Readable names for the errors a switch sends, so a refused flow-mod is
// logged as "BAD_ACTION/BAD_OUT_GROUP" rather than "error 2/9".
import { ErrorType } from './numbers.js';

/** Codes per error type, indexed by code (OpenFlow 1.3.5 section 7.4.4). */
const CODES: Partial<Record<number, readonly string[]>> = {
  [ErrorType.HELLO_FAILED]: ['INCOMPATIBLE', 'EPERM'],
  [ErrorType.BAD_REQUEST]: [
    'BAD_VERSION',
    'BAD_TYPE',
    'BAD_MULTIPART',
    'BAD_EXPERIMENTER',
    'BAD_EXP_TYPE',
    'EPERM',
    'BAD_LEN',
    'BUFFER_EMPTY',
    'BUFFER_UNKNOWN',
    'BAD_TABLE_ID',
    'IS_SLAVE',
    'BAD_PORT',
    'BAD_PACKET',
    'MULTIPART_BUFFER_OVERFLOW',
  ],
  [ErrorType.BAD_ACTION]: [
    'BAD_TYPE',
    'BAD_LEN',
    'BAD_EXPERIMENTER',
    'BAD_EXP_TYPE',
    'BAD_OUT_PORT',
    'BAD_ARGUMENT',
    'EPERM',
    'TOO_MANY',
    'BAD_QUEUE',
    'BAD_OUT_GROUP',
    'MATCH_INCONSISTENT',
    'UNSUPPORTED_ORDER',
    'BAD_TAG',
    'BAD_SET_TYPE',
    'BAD_SET_LEN',
    'BAD_SET_ARGUMENT',
  ],
  [ErrorType.BAD_INSTRUCTION]: [
    'UNKNOWN_INST',
    'UNSUP_INST',
    'BAD_TABLE_ID',
    'UNSUP_METADATA',
    'UNSUP_METADATA_MASK',
    'BAD_EXPERIMENTER',
    'BAD_EXP_TYPE',
    'BAD_LEN',
    'EPERM',
  ],
  [ErrorType.BAD_MATCH]: [
    'BAD_TYPE',
    'BAD_LEN',
    'BAD_TAG',
    'BAD_DL_ADDR_MASK',
    'BAD_NW_ADDR_MASK',
    'BAD_WILDCARDS',
    'BAD_FIELD',
    'BAD_VALUE',
    'BAD_MASK',
    'BAD_PREREQ',
    'DUP_FIELD',
    'EPERM',
  ],
  [ErrorType.FLOW_MOD_FAILED]: [
    'UNKNOWN',
    'TABLE_FULL',
    'BAD_TABLE_ID',
    'OVERLAP',
    'EPERM',
    'BAD_TIMEOUT',
    'BAD_COMMAND',
    'BAD_FLAGS',
  ],
  [ErrorType.SWITCH_CONFIG_FAILED]: ['BAD_FLAGS', 'BAD_LEN', 'EPERM'],
  [ErrorType.ROLE_REQUEST_FAILED]: ['STALE', 'UNSUP', 'BAD_ROLE'],
};

const TYPE_NAMES = new Map<number, string>(Object.entries(ErrorType).map(([name, value]) => [value, name]));

/** `TYPE/CODE` for the error types the controller meets, numbers for anything else. */
export function describeError(errorType: number, code: number): string {
  const typeName = TYPE_NAMES.get(errorType) ?? `type ${errorType}`;
  const codeName = CODES[errorType]?.[code] ?? `code ${code}`;
  return `${typeName}/${codeName}`;
}
