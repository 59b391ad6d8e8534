// The @fastify/http-proxy peer of the gateway benchmark: fastify 5, logger off, every path
// proxied to the origin. Usage: node fastify-proxy.mjs PORT UPSTREAM_URL
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [port, upstream] = process.argv.slice(2);
const app = Fastify({ logger: false });
await app.register(proxy, { upstream });
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
