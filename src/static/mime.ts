import mime from 'mime-types';
import { extensionOf } from './request-path.js';

const memo = new Map<string, string>();

/** Content-Type with charset for text types, from the mime-types table (memoised by extension). */
export function contentTypeOf(rel: string): string {
  const ext = extensionOf(rel).toLowerCase();
  let type = memo.get(ext);
  if (type === undefined) {
    type = (ext && mime.contentType(ext)) || 'application/octet-stream';
    if (memo.size < 1000) memo.set(ext, type);
  }
  return type;
}
