// Where things live inside a bundle, and which names are acceptable. Every path
// that reaches a backend goes through here, so a tampered manifest cannot point
// the store outside its bundle (no absolute paths, no `..`, no hidden files,
// which is where in-progress writes live).
import { BundleError } from './errors.js';

export const MANIFEST_FILE = 'manifest.json';
export const CHANNEL_STATE_FILE = 'channel-state.json';
export const FLOWS_FILE = 'flows.json';
export const IMAGES_DIR = 'images';

/** A VM as the store names it. */
export interface BundleVmRef {
  namespace: string;
  name: string;
}

// Bundle ids become directory names (or object-key prefixes): one path segment,
// lower-case like the Kubernetes names they are made of.
const BUNDLE_ID = /^[a-z0-9][a-z0-9._-]{0,252}$/;
// Kubernetes namespaces are DNS labels, object names DNS subdomains.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const PATH_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$/;
const MAX_PATH_SEGMENTS = 8;

export function checkBundleId(id: string): string {
  if (typeof id !== 'string' || !BUNDLE_ID.test(id)) {
    throw new BundleError(
      'InvalidName',
      `bundle id ${JSON.stringify(id)} is not valid: use 1-253 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit`,
    );
  }
  return id;
}

export function checkVmRef(vm: BundleVmRef): BundleVmRef {
  if (!DNS_LABEL.test(vm.namespace)) {
    throw new BundleError('InvalidName', `VM namespace ${JSON.stringify(vm.namespace)} is not a DNS label`);
  }
  if (!DNS_SUBDOMAIN.test(vm.name)) {
    throw new BundleError('InvalidName', `VM name ${JSON.stringify(vm.name)} is not a DNS subdomain`);
  }
  return vm;
}

export function vmKey(vm: BundleVmRef): string {
  return `${vm.namespace}/${vm.name}`;
}

/** The bundle-relative path of a VM's image. */
export function imagePath(vm: BundleVmRef): string {
  checkVmRef(vm);
  return `${IMAGES_DIR}/${vm.namespace}/${vm.name}.img`;
}

/** Returns the reason a bundle-relative path is unacceptable, or undefined when it is fine. */
export function relativePathProblem(path: string): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'must be a non-empty string';
  const segments = path.split('/');
  if (segments.length > MAX_PATH_SEGMENTS) return `has more than ${MAX_PATH_SEGMENTS} segments`;
  for (const segment of segments) {
    if (!PATH_SEGMENT.test(segment)) {
      return `must be relative to the bundle, made of segments of letters, digits, '.', '_' and '-' not starting with '.' (bad segment ${JSON.stringify(segment)})`;
    }
  }
  return undefined;
}

export function checkRelativePath(path: string): string {
  const problem = relativePathProblem(path);
  if (problem) throw new BundleError('InvalidName', `bundle path ${JSON.stringify(path)} ${problem}`, path);
  return path;
}
