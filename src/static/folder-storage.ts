import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { sha256 } from './etag.js';
import type { ObjectMeta, ObjectStorage, PutMeta } from './storage.js';
import type { ReadRange } from './types.js';

/** A published release in a folder: every write is a temporary file renamed into place (atomic). */
export class FolderStorage implements ObjectStorage {
  readonly url: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.url = this.root;
  }

  private path(key: string): string {
    return join(this.root, key);
  }

  async get(key: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  async stream(key: string, range?: ReadRange): Promise<Readable> {
    const s = createReadStream(this.path(key), { ...range, highWaterMark: 256 * 1024 });
    // Surface "not there" before the caller writes headers.
    await new Promise<void>((ok, fail) => {
      s.once('open', () => ok());
      s.once('error', fail);
    });
    return s;
  }

  async head(key: string): Promise<ObjectMeta | undefined> {
    const body = await this.get(key);
    if (body === undefined) return undefined;
    // A folder has no metadata store: the hash is recomputed, which is what verification needs.
    return { size: body.length, sha256: Buffer.from(sha256(body), 'base64url').toString('hex') };
  }

  async put(key: string, body: Buffer, _meta: PutMeta): Promise<void> {
    const file = this.path(key);
    await mkdir(dirname(file), { recursive: true });
    const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, body);
    await rename(tmp, file);
  }

  async delete(keys: readonly string[]): Promise<void> {
    await Promise.all(keys.map((k) => rm(this.path(k), { force: true })));
  }

  close(): void {}
}

/** Whether a path exists as a folder. */
export async function isFolder(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
