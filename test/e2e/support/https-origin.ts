import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** An https origin answering with what it saw of the TLS session. */
export async function httpsOrigin(options: {
  cert: string;
  key: string;
  ca?: string;
  requireClientCert?: boolean;
}): Promise<{ server: Server; url: string }> {
  const server = createServer(
    {
      cert: readFileSync(options.cert),
      key: readFileSync(options.key),
      ...(options.ca ? { ca: readFileSync(options.ca) } : {}),
      requestCert: options.requireClientCert === true,
      rejectUnauthorized: options.requireClientCert === true,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const peer = socket.getPeerCertificate();
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          servername: (socket as TLSSocket & { servername?: string | false }).servername || null,
          clientCn: peer?.subject?.CN ?? null,
          host: req.headers.host,
        }),
      );
    },
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `https://127.0.0.1:${(server.address() as AddressInfo).port}` };
}
