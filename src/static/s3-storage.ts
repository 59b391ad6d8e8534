import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { TrellisError } from '../core/errors.js';
import type { ObjectMeta, ObjectStorage, PutMeta, S3Settings } from './storage.js';
import type { ReadRange } from './types.js';

/**
 * An S3-compatible bucket through @aws-sdk/client-s3. Credentials come from the SDK's usual
 * chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profiles, instance roles); endpoint and
 * region from the settings or AWS_ENDPOINT_URL(_S3) / AWS_REGION.
 */
export class S3Storage implements ObjectStorage {
  readonly url: string;
  private readonly client: S3Client;

  constructor(
    private readonly bucket: string,
    private readonly prefix: string,
    settings: S3Settings,
  ) {
    this.url = `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
    const endpoint = settings.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.client = new S3Client({
      region: settings.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      ...(endpoint ? { endpoint } : {}),
      // S3-compatible servers (MinIO, s3rver, Ceph) rarely have per-bucket DNS names.
      forcePathStyle: settings.forcePathStyle ?? endpoint !== undefined,
      maxAttempts: 3,
    });
  }

  private key(key: string): string {
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return Buffer.from(await out.Body!.transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailable(this.url, err);
    }
  }

  async stream(key: string, range?: ReadRange): Promise<Readable> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(key),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      );
      return out.Body as Readable;
    } catch (err) {
      throw isNotFound(err) ? err : unavailable(this.url, err);
    }
  }

  async head(key: string): Promise<ObjectMeta | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }));
      return {
        size: out.ContentLength ?? 0,
        ...(out.ETag ? { etag: out.ETag.replace(/"/g, '') } : {}),
        ...(out.Metadata?.sha256 ? { sha256: out.Metadata.sha256 } : {}),
        ...(out.ContentType ? { contentType: out.ContentType } : {}),
        ...(out.CacheControl ? { cacheControl: out.CacheControl } : {}),
        ...(out.ContentEncoding ? { contentEncoding: out.ContentEncoding } : {}),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw unavailable(this.url, err);
    }
  }

  async put(key: string, body: Buffer, meta: PutMeta): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(key),
          Body: body,
          ContentLength: body.length,
          ContentType: meta.contentType,
          CacheControl: meta.cacheControl,
          ...(meta.contentEncoding ? { ContentEncoding: meta.contentEncoding } : {}),
          Metadata: { sha256: meta.sha256 },
        }),
      );
    } catch (err) {
      throw unavailable(this.url, err);
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.key(k) })), Quiet: true },
          }),
        );
      } catch (err) {
        throw unavailable(this.url, err);
      }
    }
  }

  close(): void {
    this.client.destroy();
  }
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

function unavailable(url: string, err: unknown): TrellisError {
  const e = err as { name?: string; message?: string };
  return new TrellisError(
    'TRELLIS_E_STATIC_SOURCE_UNAVAILABLE',
    `${url}: ${e.name ?? 'error'}: ${e.message ?? String(err)} (check the endpoint, region, bucket and AWS credentials)`,
    { cause: err, status: 502 },
  );
}
