// A saved migration stream made loadable into a QEMU that is already running:
// a qcow2 file whose one internal snapshot holds the stream as its VM state.
//
// Why: a migration stream loads only into a QEMU started with `-incoming`, and
// on KubeVirt the VM's QEMU is started by virt-launcher's libvirt (the
// operator creates the VMI with startStrategy: Paused), never by the agent.
// A running QEMU (paused or in prelaunch) loads state with the QMP job
// `snapshot-load` from a qcow2 node added with `blockdev-add` (QEMU >= 6.0).
// The VM state of a qcow2 internal snapshot is written by savevm in the same
// format as a migration stream (both are qemu_savevm_state's output, read back
// by qemu_loadvm_state), so the stream goes in as it is:
//
//   1. `qemu-img create -f qcow2 <file> 0`: no disk, only VM state;
//   2. `qemu-io -c 'write -b -s <chunk> <offset> <length>'`: writes the stream
//      into the image's VM state area (-b), one chunk at a time (qemu-io holds
//      a chunk in memory);
//   3. `qemu-img snapshot -c`: the snapshot that owns that VM state;
//   4. its header's VM state size, which qemu-img leaves 0 (it saves no VM
//      state itself) and which `snapshot-load` reads to refuse a disk-only
//      snapshot, is set to the stream's length (qcow2 spec, "Snapshot table").
//
// The qemu tools write the qcow2 structures; the agent only patches that one
// field. Tried here on QEMU 7.2: a paused libvirt domain loaded a stream saved
// from another domain of the same XML and ran on with its memory intact.
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { promisify } from 'node:util';

/** The snapshot's name inside the qcow2 file. */
export const VMSTATE_SNAPSHOT = 'violin';
/** Stream bytes per qemu-io write: what one qemu-io holds in memory. */
const CHUNK_BYTES = 64 * 1024 ** 2;
const SECTOR = 512;

// qcow2 header and snapshot table offsets (docs/interop/qcow2.txt in QEMU's source).
const HEADER_NB_SNAPSHOTS = 60;
const HEADER_SNAPSHOTS_OFFSET = 64;
const SNAPSHOT_VM_STATE_SIZE = 32;
const SNAPSHOT_EXTRA_DATA_SIZE = 36;
const SNAPSHOT_EXTRA_VM_STATE_SIZE_LARGE = 40;

const run = promisify(execFile);

/** Writes `stream` (a migration stream) as the VM state of a new qcow2 file at `path`; `workDir` holds the chunks meanwhile. */
export async function writeVmstateImage(stream: Readable, path: string, workDir: string): Promise<number> {
  await run('qemu-img', ['create', '-q', '-f', 'qcow2', path, '0']);
  let size = 0;
  let index = 0;
  for await (const chunk of chunks(stream, CHUNK_BYTES)) {
    const file = join(workDir, `chunk-${index++}`);
    // Sector-aligned, padded with zeros: the loader stops at the stream's end marker.
    const length = Math.ceil(chunk.byteLength / SECTOR) * SECTOR;
    const out = createWriteStream(file);
    out.end(
      length === chunk.byteLength ? chunk : Buffer.concat([chunk, Buffer.alloc(length - chunk.byteLength)]),
    );
    await finished(out);
    try {
      await run('qemu-io', ['-c', `write -b -q -s ${file} ${size} ${length}`, path]);
    } finally {
      await rm(file, { force: true });
    }
    size += chunk.byteLength;
  }
  if (size === 0) throw new Error('the image is empty');
  await run('qemu-img', ['snapshot', '-c', VMSTATE_SNAPSHOT, path]);
  await setVmStateSize(path, size);
  return size;
}

/** Sets the VM state size of the file's only snapshot (qemu-img snapshot -c leaves it 0). */
async function setVmStateSize(path: string, size: number): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const header = Buffer.alloc(72);
    await file.read(header, 0, header.length, 0);
    if (header.readUInt32BE(0) !== 0x514649fb) throw new Error(`${path} is not a qcow2 file`);
    const count = header.readUInt32BE(HEADER_NB_SNAPSHOTS);
    if (count !== 1) throw new Error(`${path} has ${count} snapshots, expected 1`);
    const entry = Number(header.readBigUInt64BE(HEADER_SNAPSHOTS_OFFSET));
    const fields = Buffer.alloc(48);
    await file.read(fields, 0, fields.length, entry);
    const extraDataSize = fields.readUInt32BE(SNAPSHOT_EXTRA_DATA_SIZE);
    // The 32-bit field is what old readers see; the 64-bit one in the extra data is what QEMU reads when present.
    fields.writeUInt32BE(size > 0xffffffff ? 0 : size, SNAPSHOT_VM_STATE_SIZE);
    if (extraDataSize >= 8) fields.writeBigUInt64BE(BigInt(size), SNAPSHOT_EXTRA_VM_STATE_SIZE_LARGE);
    else if (size > 0xffffffff) throw new Error(`${path}: no room for a VM state of ${size} bytes`);
    await file.write(fields, 0, fields.length, entry);
    await file.sync();
  } finally {
    await file.close();
  }
}

/** `stream` cut into buffers of `size` bytes (the last one shorter). */
async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let held = 0;
  for await (const data of stream as AsyncIterable<Buffer>) {
    let rest = data;
    while (held + rest.byteLength >= size) {
      const take = size - held;
      parts.push(rest.subarray(0, take));
      yield Buffer.concat(parts);
      parts = [];
      held = 0;
      rest = rest.subarray(take);
    }
    if (rest.byteLength > 0) {
      parts.push(rest);
      held += rest.byteLength;
    }
  }
  if (held > 0) yield Buffer.concat(parts);
}
