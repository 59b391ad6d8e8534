import { type FileHandle, open } from 'node:fs/promises';
import { BoundedLru } from './lru.js';

interface Slot {
  handle: Promise<FileHandle>;
  refs: number;
  evicted: boolean;
}

/** A held descriptor; call `release` when the stream using it is done. */
export interface HeldFile {
  handle: FileHandle;
  release(): void;
}

/**
 * Bounded cache of open file descriptors for streamed (large) files, like nginx's
 * open_file_cache: keyed by file version (device, inode, size, mtime), so a replaced file gets a
 * new descriptor, and one still in use by a stream is closed only when its last reader is done.
 * A file deleted mid-stream stays readable through its descriptor, so the response completes.
 */
export class OpenFiles {
  private readonly lru: BoundedLru<string, Slot>;

  constructor(maxOpen: number) {
    this.lru = new BoundedLru(
      maxOpen,
      Number.POSITIVE_INFINITY,
      () => 0,
      (_k, slot) => {
        slot.evicted = true;
        if (slot.refs === 0) closeQuietly(slot.handle);
      },
    );
  }

  async acquire(path: string, version: string): Promise<HeldFile> {
    let slot = this.lru.get(version);
    if (slot === undefined) {
      slot = { handle: openVersion(path, version), refs: 0, evicted: false };
      const s = slot;
      s.handle.catch(() => this.lru.delete(version));
      this.lru.set(version, s);
    }
    const s = slot;
    s.refs++;
    let handle: FileHandle;
    try {
      handle = await s.handle;
    } catch (err) {
      s.refs--;
      throw err;
    }
    let released = false;
    return {
      handle,
      release: () => {
        if (released) return;
        released = true;
        s.refs--;
        if (s.evicted && s.refs === 0) closeQuietly(s.handle);
      },
    };
  }

  /** Closes every descriptor no stream is using; the rest close when their streams end. */
  clear(): void {
    this.lru.clear();
  }
}

/**
 * Opens the file and checks it is still the version that was described (device, inode, size):
 * a file replaced between the stat and the open must not be served under the old metadata.
 */
async function openVersion(path: string, version: string): Promise<FileHandle> {
  const handle = await open(path, 'r');
  const st = await handle.stat();
  if (!version.startsWith(`${st.dev}:${st.ino}:${st.size}:`)) {
    await handle.close().catch(() => {});
    throw Object.assign(new Error(`${path} changed since it was described`), { code: 'ENOENT' });
  }
  return handle;
}

function closeQuietly(handle: Promise<FileHandle>): void {
  handle.then(
    (h) => h.close().catch(() => {}),
    () => {},
  );
}
