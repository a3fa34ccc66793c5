// A real S3 server for the lab and the tests: SeaweedFS (`weed server -s3`,
// master, volume server, filer and S3 gateway in one process) on loopback,
// with its data in a directory and one identity whose keys the caller gets.
// Built from its Go module by hack/build-go-binaries.sh seaweedfs; chosen over
// MinIO (AGPL-3.0, and the newest commit the Go proxy has is from February
// 2026) and Debian's radosgw (a Ceph cluster: monitors and OSDs to run first)
// because it is Apache-2.0, actively maintained, builds with CGO_ENABLED=0 and
// starts as one process. It can be killed and started again on the same data,
// which is what the fault tests need.
import { CreateBucketCommand, ListBucketsCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { binaryCacheDir } from '../../src/devenv/binaries.js';
import { freeLoopbackPort } from '../../src/devenv/free-port.js';
import { ManagedProcess } from '../../src/devenv/managed-process.js';
import type { S3Settings } from '../../src/store/s3-settings.js';
import { requireTool } from '../ovs/require-tool.js';

export interface LabS3Options {
  /** Where the server keeps its data, config and log; reused by restart(). */
  dir: string;
  /** Buckets to create once the server is up. */
  buckets?: string[];
  log?: (message: string) => void;
}

/** Loose enough for a 2-core machine shared by several test runs. */
const READY_TIMEOUT_MS = 90_000;
const REGION = 'us-east-1';
/** Room for the filer's own volumes and the buckets' (see the -volume.max argument). */
const VOLUME_SLOTS = 64;

export class LabS3Server {
  private process: ManagedProcess | undefined;

  private constructor(
    private readonly binary: string,
    private readonly args: string[],
    readonly dir: string,
    readonly endpoint: string,
    readonly accessKeyId: string,
    readonly secretAccessKey: string,
  ) {}

  static async start(options: LabS3Options): Promise<LabS3Server> {
    const binary = requireTool(
      join(binaryCacheDir(), 'weed'),
      'the SeaweedFS S3 server the lab stores bundles in; hack/build-go-binaries.sh seaweedfs builds it',
    );
    const dataDir = join(options.dir, 'data');
    await mkdir(dataDir, { recursive: true });
    const accessKeyId = `violin${randomBytes(6).toString('hex')}`;
    const secretAccessKey = randomBytes(24).toString('base64url');
    const config = join(options.dir, 's3.json');
    await writeFile(
      config,
      JSON.stringify({
        identities: [
          {
            name: 'violin',
            credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }],
            actions: ['Admin', 'Read', 'List', 'Tagging', 'Write'],
          },
        ],
      }),
      { mode: 0o600 },
    );
    // Every port explicit: the defaults (and port+10000 for gRPC) may be taken by another run.
    const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = await Promise.all(
      Array.from({ length: 8 }, () => freeLoopbackPort()),
    );
    const args = [
      'server',
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      `-dir=${dataDir}`,
      // Volume slots: about a minute after start the filer flushes its own metadata log into volumes
      // of the empty collection, several at once; with 4 slots that took them all, and every upload to
      // the bucket after the first minute failed ('No writable volumes and no free volumes left':
      // make demo's captures). Volumes are files that grow as written, so spare slots cost no disk.
      `-volume.max=${VOLUME_SLOTS}`,
      '-master.volumeSizeLimitMB=256',
      '-master.telemetry=false',
      `-master.port=${master}`,
      `-master.port.grpc=${masterGrpc}`,
      `-volume.port=${volume}`,
      `-volume.port.grpc=${volumeGrpc}`,
      '-filer',
      `-filer.port=${filer}`,
      `-filer.port.grpc=${filerGrpc}`,
      `-filer.localSocket=${join(options.dir, 'filer.sock')}`,
      '-s3',
      `-s3.port=${s3}`,
      `-s3.port.grpc=${s3Grpc}`,
      '-s3.port.iceberg=0',
      '-s3.port.lance=0',
      `-s3.localSocket=${join(options.dir, 's3.sock')}`,
      `-s3.config=${config}`,
    ];
    const server = new LabS3Server(
      binary,
      args,
      options.dir,
      `http://127.0.0.1:${s3}`,
      accessKeyId,
      secretAccessKey,
    );
    await server.run(options.log);
    for (const bucket of options.buckets ?? []) await server.createBucket(bucket);
    return server;
  }

  /** The settings a violin process gets from the S3 Secret, for this server. */
  settings(source = `the lab's S3 server at ${this.endpoint}`): S3Settings {
    return {
      endpoint: this.endpoint,
      region: REGION,
      forcePathStyle: true,
      accessKeyId: this.accessKeyId,
      secretAccessKey: this.secretAccessKey,
      source,
    };
  }

  /** The Secret's data (what the chart turns into environment variables). */
  secretData(): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: this.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.secretAccessKey,
      AWS_REGION: REGION,
      AWS_ENDPOINT_URL_S3: this.endpoint,
      VIOLIN_S3_FORCE_PATH_STYLE: 'true',
    };
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  get logPath(): string {
    return join(this.dir, 'weed.log');
  }

  async createBucket(bucket: string): Promise<void> {
    const client = this.client();
    try {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
    } catch (err) {
      if ((err as Error).name !== 'BucketAlreadyOwnedByYou' && (err as Error).name !== 'BucketAlreadyExists')
        throw err;
    } finally {
      client.destroy();
    }
  }

  /** A crash: SIGKILL, no chance to finish or clean anything. */
  async kill(): Promise<void> {
    const process = this.process;
    if (!process) return;
    process.killNow();
    await process.exited;
  }

  /** Starts the server again on the same ports, data and credentials (after kill() or stop()). */
  async restart(log?: (message: string) => void): Promise<void> {
    await this.run(log);
  }

  async stop(): Promise<void> {
    await this.process?.stop();
  }

  private client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      region: REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey },
      maxAttempts: 1,
    });
  }

  private async run(log: (message: string) => void = () => {}): Promise<void> {
    log(`starting SeaweedFS S3 at ${this.endpoint} (data in ${this.dir})`);
    const process = new ManagedProcess('seaweedfs', this.binary, this.args, this.logPath);
    this.process = process;
    const client = this.client();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    try {
      for (;;) {
        if (!process.running) {
          throw new Error(`SeaweedFS exited while starting; its log:\n${await process.logTail()}`);
        }
        try {
          await client.send(new ListBucketsCommand({}));
          return;
        } catch (err) {
          if (Date.now() > deadline) {
            await process.stop();
            throw new Error(
              `SeaweedFS S3 at ${this.endpoint} not ready after ${READY_TIMEOUT_MS / 1000}s (${(err as Error).message}); its log:\n${await process.logTail()}`,
              { cause: err },
            );
          }
          await sleep(250);
        }
      }
    } finally {
      client.destroy();
    }
  }
}
