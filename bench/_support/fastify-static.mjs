// The @fastify/static peer of the static benchmark: fastify 5, logger off.
// Usage: node fastify-static.mjs PORT ROOT
import fastifyStatic from '@fastify/static';
import Fastify from 'fastify';

const [port, root] = process.argv.slice(2);
const app = Fastify({ logger: false });
await app.register(fastifyStatic, { root });
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
