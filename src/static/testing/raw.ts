import { connect } from 'node:net';

/** The status, headers and body of a raw HTTP/1.1 exchange (the target is sent byte for byte). */
export interface RawReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Sends `GET target` exactly as given (no client-side normalisation) and reads the whole reply. */
export function rawGet(port: number, target: string | Buffer, extra = ''): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of head.slice(1)) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(head[0]!.split(' ')[1]), headers, body: all.subarray(end + 4) });
    });
    const t = typeof target === 'string' ? Buffer.from(target, 'latin1') : target;
    socket.write(
      Buffer.concat([
        Buffer.from('GET '),
        t,
        Buffer.from(` HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n${extra}\r\n`),
      ]),
    );
  });
}
