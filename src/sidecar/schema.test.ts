import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/config.js';
import { parseSidecarConfig } from './role.js';

describe('sidecar file', () => {
  it("the docs' example is a valid sidecar file", () => {
    const doc = readFileSync(join(import.meta.dirname, '../../docs/sidecar.md'), 'utf8');
    // The reference example (the runnable one earlier on the page is checked by running it).
    const yaml = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)]
      .map((m) => m[1]!)
      .find((block) => block.includes('inbound: { middlewares: [auth, limit] }'))!;
    const config = parseSidecarConfig(yaml, 'docs/sidecar.md', { DB_PASSWORD: 'x' });
    expect(config.app.port).toBe(3000);
    expect(config.inbound.middlewares).toEqual(['auth', 'limit']);
    expect(config.pubsub.subscriptions[0]).toMatchObject({ topic: 'orders', maxDeliveries: 5 });
  });

  const messageOf = (text: string) => {
    try {
      parseSidecarConfig(text, 'sidecar.yaml');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('the file was accepted');
  };

  it('names every mistake with its line: a bad policy, a plain secret', () => {
    const message = messageOf('app: { port: 3000, restart: sometimes }\nsecrets: { db: hunter2 }\n');
    expect(message).toMatch(/sidecar\.yaml:1:\d+ app\.restart/);
    expect(message).toContain('sidecar.yaml:2:16 secrets.db: write secret://env/NAME or secret://file/PATH');
  });

  it('refuses an unknown inbound middleware and the app port as the inbound port', () => {
    expect(messageOf('app: { port: 3000 }\ninbound: { middlewares: [auth] }\n')).toContain(
      'unknown middleware "auth": define it under middlewares:',
    );
    expect(messageOf('app: { port: 3000 }\nlisten: { port: 3000 }\n')).toContain(
      'the inbound port must differ from app.port',
    );
  });
});
