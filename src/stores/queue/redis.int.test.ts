import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { messageQueueConformance } from './conformance.js';
import { startTcpProxy } from './testing/tcp-proxy.js';

const url = await serviceUrl('redis');
// Every key this file writes carries this prefix, so the run can delete exactly its own keys.
const prefix = `tq${randomBytes(4).toString('hex')}`;

describe.skipIf(!url)('redis', () => {
  const server = new URL(url ?? 'redis://127.0.0.1:6379');
  messageQueueConformance({
    name: 'redis',
    url: () => `${url}?prefix=${prefix}`,
    outage: async () => {
      const proxy = await startTcpProxy(server.hostname, Number(server.port || 6379));
      return { ...proxy, url: `redis://${proxy.address}${server.pathname}?prefix=${prefix}` };
    },
    cleanup: async () => {
      const redis = new Redis(url!);
      const keys: string[] = [];
      for await (const batch of redis.scanStream({ match: `${prefix}:*`, count: 500 })) keys.push(...batch);
      if (keys.length > 0) await redis.del(...keys);
      await redis.quit();
    },
  });
});
