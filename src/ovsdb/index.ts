// The OVSDB component: an RFC 7047 client and a typed view of Open_vSwitch.
// All the client and the value notation export is part of the component's API.
export * from './client.js';
export { FramingError, JsonMessageScanner } from './framing.js';
export { OPEN_VSWITCH_DB, OpenVswitchDb } from './open-vswitch.js';
export type { BridgeSettings, OpenVswitchOptions } from './open-vswitch.js';
export { FAIL_MODE_BEFORE_KEY, SECURED_BY_KEY_PREFIX } from './bridge-holders.js';
export type { FailMode, ReleaseOutcome } from './bridge-holders.js';
export {
  ATTACHED_MAC_KEY,
  LAB_VM_KEY,
  OVS_CNI_IFACE_KEY,
  OVS_CNI_POD_UID_KEY,
  attachmentsOf,
} from './ports.js';
export type { AttachmentOwner, InterfaceInfo, PortInfo, VmAttachment } from './ports.js';
export type {
  Condition,
  MonitorRequest,
  Mutation,
  Operation,
  OperationResult,
  Row,
  RowInput,
  RowUpdate,
  TableUpdates,
} from './protocol.js';
export * from './values.js';
