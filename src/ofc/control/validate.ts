// Checks requests from the transaction controller before anything is touched,
// so a bad request is refused whole with a message naming the field.
import { OfcError } from './errors.js';
import type { ArmRequest, ArmedVm, BufferTier, NetworkMode, RecordedPacket, SavedFlow } from './types.js';

const MODES: readonly NetworkMode[] = ['Buffer', 'Drop', 'Off'];
const TIERS: readonly BufferTier[] = ['controller', 'datapath'];
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function bad(message: string): never {
  throw new OfcError('BadRequest', message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.length === 0) bad(`${field} must be a non-empty string`);
  return value;
}

export function validateArmRequest(body: unknown): ArmRequest {
  if (!isObject(body)) bad('arm request must be a JSON object');
  const snapshotId = nonEmptyString(body.snapshotId, 'snapshotId');
  const mode = body.mode as NetworkMode;
  if (!MODES.includes(mode)) bad(`mode must be one of ${MODES.join(', ')}`);
  const bufferTier = body.bufferTier as BufferTier;
  if (!TIERS.includes(bufferTier)) bad(`bufferTier must be one of ${TIERS.join(', ')}`);
  const bufferLimitBytes = body.bufferLimitBytes;
  if (
    typeof bufferLimitBytes !== 'number' ||
    !Number.isSafeInteger(bufferLimitBytes) ||
    bufferLimitBytes <= 0
  ) {
    bad('bufferLimitBytes must be a positive integer');
  }
  if (typeof body.recordChannelState !== 'boolean') bad('recordChannelState must be a boolean');
  if (!Array.isArray(body.vms) || body.vms.length === 0) bad('vms must be a non-empty array');
  const names = new Set<string>();
  const macs = new Set<string>();
  const vms = body.vms.map((raw: unknown, i: number): ArmedVm => {
    if (!isObject(raw)) bad(`vms[${i}] must be an object`);
    const name = nonEmptyString(raw.name, `vms[${i}].name`);
    const mac = nonEmptyString(raw.mac, `vms[${i}].mac`).toLowerCase();
    if (!MAC.test(mac)) bad(`vms[${i}].mac '${String(raw.mac)}' is not a MAC address like 52:54:00:12:34:56`);
    if (names.has(name)) bad(`vms[${i}].name '${name}' appears twice`);
    if (macs.has(mac)) bad(`vms[${i}].mac ${mac} appears twice`);
    names.add(name);
    macs.add(mac);
    const vm: ArmedVm = { name, mac };
    if (raw.bridge !== undefined) vm.bridge = nonEmptyString(raw.bridge, `vms[${i}].bridge`);
    if (raw.ofport !== undefined) {
      if (typeof raw.ofport !== 'number' || !Number.isInteger(raw.ofport) || raw.ofport <= 0) {
        bad(`vms[${i}].ofport must be a positive integer`);
      }
      vm.ofport = raw.ofport;
    }
    return vm;
  });
  const request: ArmRequest = {
    snapshotId,
    mode,
    bufferTier,
    bufferLimitBytes,
    recordChannelState: body.recordChannelState,
    vms,
  };
  if (body.bridges !== undefined) {
    if (!Array.isArray(body.bridges)) bad('bridges must be an array of bridge names');
    request.bridges = body.bridges.map((b: unknown, i: number) => nonEmptyString(b, `bridges[${i}]`));
  }
  return request;
}

export function validateSavedFlows(body: unknown): SavedFlow[] {
  if (!Array.isArray(body)) bad('flows must be an array');
  return body.map((raw: unknown, i: number): SavedFlow => {
    if (!isObject(raw)) bad(`flows[${i}] must be an object`);
    const { tableId, priority } = raw;
    if (typeof tableId !== 'number' || !Number.isInteger(tableId) || tableId < 0 || tableId > 254) {
      bad(`flows[${i}].tableId must be an integer 0..254`);
    }
    if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0 || priority > 65535) {
      bad(`flows[${i}].priority must be an integer 0..65535`);
    }
    return {
      bridge: nonEmptyString(raw.bridge, `flows[${i}].bridge`),
      tableId,
      priority,
      cookie: nonEmptyString(raw.cookie, `flows[${i}].cookie`),
      match: typeof raw.match === 'string' ? raw.match : bad(`flows[${i}].match must be a string`),
      actions: nonEmptyString(raw.actions, `flows[${i}].actions`),
    };
  });
}

export function validateChannelState(body: unknown): RecordedPacket[] {
  if (!Array.isArray(body)) bad('channelState must be an array');
  return body.map((raw: unknown, i: number): RecordedPacket => {
    if (!isObject(raw)) bad(`channelState[${i}] must be an object`);
    if (typeof raw.atMs !== 'number' || !(raw.atMs >= 0))
      bad(`channelState[${i}].atMs must be a number >= 0`);
    const frame = nonEmptyString(raw.frame, `channelState[${i}].frame`);
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(frame) || Buffer.from(frame, 'base64').length < 14) {
      bad(`channelState[${i}].frame must be a base64 Ethernet frame`);
    }
    return {
      atMs: raw.atMs,
      from: nonEmptyString(raw.from, `channelState[${i}].from`),
      to: nonEmptyString(raw.to, `channelState[${i}].to`),
      frame,
    };
  });
}
