// A bundle writer that is killed mid-write by bundle.test.ts: it streams an
// endless image and says so on stdout once bytes are on disk. Run with
// `node --import tsx killed-writer.ts <location> <bundle-id>`.
import { openBundleWriter } from '../../../src/store/index.js';

const [location, bundleId] = process.argv.slice(2);
if (!location || !bundleId) throw new Error('usage: killed-writer.ts <location> <bundle-id>');

const writer = await openBundleWriter(location, bundleId);
await writer.writeFlows([]);

async function* endless(): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(7);
  for (let sent = 0; ; sent++) {
    yield chunk;
    if (sent === 16) process.stdout.write('writing\n');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

await writer.writeImage({ namespace: 'bank', name: 'teller-0' }, endless());
