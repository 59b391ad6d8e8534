import { randomBytes } from 'node:crypto';
import { connect } from 'nats';
import { describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { messageQueueConformance } from './conformance.js';
import { startTcpProxy } from './testing/tcp-proxy.js';

const url = await serviceUrl('nats');
// Every stream this file creates carries this prefix, so the run deletes exactly its own.
const prefix = `TQ${randomBytes(4).toString('hex')}`;

describe.skipIf(!url)('nats', () => {
  const server = new URL(url ?? 'nats://127.0.0.1:4222');
  messageQueueConformance({
    name: 'nats',
    url: () => `${url}?prefix=${prefix}`,
    outage: async () => {
      const proxy = await startTcpProxy(server.hostname, Number(server.port || 4222));
      return { ...proxy, url: `nats://${proxy.address}?prefix=${prefix}` };
    },
    cleanup: async () => {
      const nc = await connect({ servers: `${server.hostname}:${server.port || 4222}` });
      const jsm = await nc.jetstreamManager();
      for await (const name of jsm.streams.names()) {
        if (name.startsWith(`${prefix}_`)) await jsm.streams.delete(name);
      }
      await nc.close();
    },
  });
});
