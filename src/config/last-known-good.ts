import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ConfigDocument } from './document.js';

/** What the client keeps on disk: documents as stored (secret references, never resolved values). */
export interface Snapshot {
  format: 'trellis-config-lkg/1';
  prefix: string;
  label: string;
  revision: number;
  savedAt: string;
  documents: ConfigDocument[];
}

/** Reads a last-known-good copy for this prefix and label; undefined when absent or for another view. */
export async function readSnapshot(
  file: string,
  prefix: string,
  label: string,
): Promise<Snapshot | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const s = JSON.parse(text) as Snapshot;
    if (s.format !== 'trellis-config-lkg/1' || s.prefix !== prefix || s.label !== label) return undefined;
    return s;
  } catch {
    return undefined;
  }
}

/**
 * Saves snapshots one at a time, always the newest: a save requested while one is running is
 * folded into one more save at the end. Each save writes a temporary file and renames it over
 * the old one, so a crash never leaves a half-written copy.
 */
export class SnapshotWriter {
  readonly #file: string;
  #running: Promise<void> | undefined;
  #next: Snapshot | undefined;
  #lastError: unknown;

  constructor(file: string) {
    this.#file = file;
  }

  /** The last save's failure, if it failed (reported in the client's health). */
  get lastError(): unknown {
    return this.#lastError;
  }

  save(snapshot: Snapshot): void {
    this.#next = snapshot;
    this.#running ??= this.#drain();
  }

  /** Resolves once every requested save has been written. */
  async flush(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#next) {
        const s = this.#next;
        this.#next = undefined;
        const tmp = `${this.#file}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
        try {
          await mkdir(dirname(this.#file), { recursive: true });
          await writeFile(tmp, JSON.stringify(s), { mode: 0o600 });
          await rename(tmp, this.#file);
          this.#lastError = undefined;
        } catch (err) {
          this.#lastError = err;
        }
      }
    } finally {
      this.#running = undefined;
    }
  }
}
