// The lab's S3 Secret, as an administrator creates it for the chart
// (docs/install.md, storage.s3.secretName): the keys of an s3:// location in
// a Secret of the system namespace. The operator and the agents get them as
// their environment, read back from the API server as the kubelet's envFrom
// does, so what they use is what the cluster holds.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { S3_SETTING_KEYS } from '../../src/store/s3-settings.js';
import { NAMESPACE } from './agent-credentials.js';

export const S3_SECRET_NAME = 'violin-s3';

/** Creates the Secret from `data` and returns its keys as environment variables (only the S3 setting keys). */
export async function createS3Secret(
  admin: KubeConfig,
  data: Record<string, string>,
): Promise<Record<string, string>> {
  const core = admin.makeApiClient(CoreV1Api);
  await core.createNamespacedSecret({
    namespace: NAMESPACE,
    body: { metadata: { name: S3_SECRET_NAME }, type: 'Opaque', stringData: data },
  });
  const stored = await core.readNamespacedSecret({ name: S3_SECRET_NAME, namespace: NAMESPACE });
  const keys: readonly string[] = Object.values(S3_SETTING_KEYS);
  return Object.fromEntries(
    Object.entries(stored.data ?? {})
      .filter(([key]) => keys.includes(key))
      .map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
  );
}
