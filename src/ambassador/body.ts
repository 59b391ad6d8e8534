import type { RequestContext } from '../http/types.js';

/** Whether the request has a body to read (a length above zero, or chunked). */
export function hasBody(ctx: RequestContext): boolean {
  const h = ctx.req.headers;
  return (
    h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
  );
}

/**
 * The client's body, read whole so every attempt can send it (chunked included): `too-large`
 * past `max` bytes, `gone` when the client left mid-body. Read with listeners rather than
 * `for await`, whose early exit destroys the request, and with it the socket the 413 goes on.
 */
export function readBody(ctx: RequestContext, max: number): Promise<Buffer | 'too-large' | 'gone'> {
  const req = ctx.req;
  if (Number(req.headers['content-length']) > max) return Promise.resolve('too-large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (result: Buffer | 'too-large' | 'gone') => {
      req.off('data', onData).off('end', onEnd).off('error', onGone).off('close', onClose);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        // Nothing more is read: the 413 closes the connection (see the caller).
        req.pause();
        settle('too-large');
      } else chunks.push(chunk);
    };
    const onEnd = () => settle(Buffer.concat(chunks));
    const onGone = () => settle('gone');
    const onClose = () => {
      if (!req.complete) settle('gone');
    };
    req.on('data', onData).once('end', onEnd).once('error', onGone).once('close', onClose);
  });
}
