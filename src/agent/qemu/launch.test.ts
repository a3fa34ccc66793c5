import { describe, expect, it } from 'vitest';
import { checkVmSpec, qemuArgv } from './launch.js';
import type { QemuFiles, QemuVmSpec } from './launch.js';

const SPEC: QemuVmSpec = {
  memoryMiB: 128,
  kernel: '/boot/vmlinuz',
  initrd: '/cache/initramfs.cpio.gz',
  append: 'console=ttyS0 violin.node=a',
  nic: { mac: '02:00:00:00:00:01', tap: 'tap-a' },
  netns: 'vt-lab-1234',
};
const FILES: QemuFiles = {
  qmpSocket: '/run/v/qmp.sock',
  serialLog: '/run/v/serial.log',
  pidFile: '/run/v/qemu.pid',
  stderrLog: '/run/v/qemu.log',
};

describe('QEMU command line', () => {
  it('builds a TCG VM with the NIC on its tap, QMP on a unix socket, and incoming/paused on demand', () => {
    const argv = qemuArgv(SPEC, FILES);
    const after = (flag: string) => argv[argv.indexOf(flag) + 1];
    expect(after('-accel')).toBe('tcg');
    expect(after('-m')).toBe('128');
    expect(after('-append')).toBe('console=ttyS0 violin.node=a');
    expect(after('-qmp')).toBe('unix:/run/v/qmp.sock,server=on,wait=off');
    expect(after('-netdev')).toBe('tap,id=net0,ifname=tap-a,script=no,downscript=no,vnet_hdr=off');
    expect(after('-device')).toBe('virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,romfile=');
    expect(argv).not.toContain('-incoming');
    expect(argv).not.toContain('-S');
    const restoring = qemuArgv(SPEC, FILES, { incoming: true, paused: true });
    expect(restoring.slice(-3)).toEqual(['-incoming', 'defer', '-S']);
  });

  it('refuses a QMP socket path the kernel cannot bind', () => {
    expect(() => qemuArgv(SPEC, { ...FILES, qmpSocket: `/${'x'.repeat(120)}/qmp.sock` })).toThrow(
      /longer than 107 bytes; use a shorter state dir/,
    );
  });

  it('checks a spec read from vm.json field by field', () => {
    expect(checkVmSpec(JSON.parse(JSON.stringify(SPEC)))).toEqual(SPEC);
    expect(() => checkVmSpec(null)).toThrow('VM spec must be an object');
    expect(() => checkVmSpec({ ...SPEC, memoryMiB: '128' })).toThrow(/memoryMiB must be an integer/);
    expect(() => checkVmSpec({ ...SPEC, kernel: 7 })).toThrow('VM spec kernel must be a string');
    expect(() => checkVmSpec({ ...SPEC, nic: { mac: '02:00', tap: 'tap-a' } })).toThrow(/is not a MAC/);
    expect(() => checkVmSpec({ ...SPEC, nic: { mac: SPEC.nic!.mac, tap: 'a-very-long-tap-name' } })).toThrow(
      /not an interface name/,
    );
    expect(() => checkVmSpec({ ...SPEC, netns: 'bad ns' })).toThrow(/not a namespace name/);
  });
});
