import { mkdir, readFile, rename, stat, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import { hexOf, sha256 } from './etag.js';
import { contentTypeOf } from './mime.js';
import { PRECOMPRESSED_FILE, type PrecompressedRecord } from './precompressed.js';
import { eachLimited, isCompressible, listFiles } from './walk.js';

const brotli = promisify(brotliCompress);
const gz = promisify(gzip);

/** Below this, compression saves less than its headers cost. */
const MIN_SIZE = 256;

/** Brotli at its best quality and gzip level 9: done once per build, so spend the CPU. */
export async function compressBody(body: Buffer): Promise<{ br: Buffer; gzip: Buffer }> {
  const [br, gzipped] = await Promise.all([
    brotli(body, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
      },
    }),
    gz(body, { level: 9 }),
  ]);
  return { br, gzip: gzipped };
}

export interface CompressResult {
  files: number;
  written: number;
  bytesIn: number;
  bytesOut: number;
}

/**
 * `trellis static compress DIR`: writes `file.br` and `file.gz` beside each compressible file
 * (when smaller), with the source's mtime, and records each source's hash in
 * `.trellis/precompressed.json`, so the handler serves a variant only while its source is
 * unchanged. zstd is not written: node:zlib has it only from Node 22.15 / 23.8.
 */
export async function compressFolder(
  dir: string,
  onFile: (rel: string, written: number) => void = () => {},
): Promise<CompressResult> {
  const all = await listFiles(dir);
  const sources = all.filter((rel) => !rel.endsWith('.br') && !rel.endsWith('.gz'));
  const record: PrecompressedRecord = { version: 1, files: {} };
  const result: CompressResult = { files: 0, written: 0, bytesIn: 0, bytesOut: 0 };
  await eachLimited(sources, 2, async (rel) => {
    if (!isCompressible(contentTypeOf(rel))) return;
    const full = join(dir, rel);
    const body = await readFile(full);
    if (body.length < MIN_SIZE) return;
    const st = await stat(full);
    const out = await compressBody(body);
    const entry: PrecompressedRecord['files'][string] = { sha256: hexOf(sha256(body)) };
    let written = 0;
    for (const [encoding, suffix, data] of [
      ['br', '.br', out.br],
      ['gzip', '.gz', out.gzip],
    ] as const) {
      if (data.length >= body.length) continue;
      const tmp = `${full}${suffix}.tmp`;
      await writeFile(tmp, data);
      await utimes(tmp, st.atime, st.mtime);
      await rename(tmp, full + suffix);
      entry[encoding] = data.length;
      written++;
      result.bytesOut += data.length;
    }
    result.files++;
    result.bytesIn += body.length;
    result.written += written;
    if (written > 0) record.files[rel] = entry;
    onFile(rel, written);
  });
  const recordFile = join(dir, PRECOMPRESSED_FILE);
  await mkdir(dirname(recordFile), { recursive: true });
  await writeFile(`${recordFile}.tmp`, `${JSON.stringify(record, null, 1)}\n`);
  await rename(`${recordFile}.tmp`, recordFile);
  return result;
}
