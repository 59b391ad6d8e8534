import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, parseConfig } from './config.js';
import { duration, size } from './units.js';

const schema = z.strictObject({
  listen: z.strictObject({ port: z.number().int() }),
  routes: z.array(
    z.strictObject({ path: z.string(), timeout: duration().optional(), limit: size().optional() }),
  ),
});

function issuesOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, schema, 'gateway.yaml', { env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message.split('\n');
  }
  throw new Error('expected the configuration to be refused');
}

describe('parseConfig', () => {
  it('parses durations and sizes', () => {
    const cfg = parseConfig(
      'listen: { port: 80 }\nroutes:\n  - { path: /a, timeout: 250ms, limit: 1mb }\n',
      schema,
    );
    expect(cfg.routes[0]).toEqual({ path: '/a', timeout: 250, limit: 1024 * 1024 });
  });

  it('names file, line, column and path, with a suggestion for an unknown key', () => {
    const text = 'listen: { port: 80 }\nroutes:\n  - path: /a\n    timeuot: 5s\n';
    expect(issuesOf(text)).toEqual([
      'gateway.yaml:4:5 routes[0].timeuot: unknown option "timeuot" (did you mean "timeout"?)',
    ]);
  });

  it('points at the bad value', () => {
    const text = 'listen: { port: 80 }\nroutes:\n  - path: /a\n    timeout: soon\n';
    expect(issuesOf(text)).toEqual([
      'gateway.yaml:4:14 routes[0].timeout: expected a duration like 250ms, 5s or 1m, got "soon"',
    ]);
  });

  it('interpolates ${ENV} with defaults and reports missing variables where they are used', () => {
    const cfg = parseConfig(
      'listen: { port: 80 }\nroutes: [ { path: "/${P}", timeout: "${T:-2s}" } ]\n',
      schema,
      'g',
      {
        env: { P: 'x' },
      },
    );
    expect(cfg.routes[0]).toEqual({ path: '/x', timeout: 2000 });
    expect(issuesOf('listen: { port: 80 }\nroutes:\n  - path: ${NOPE}\n')).toEqual([
      'gateway.yaml:3:11 routes[0].path: environment variable NOPE is not set: export it, or write ${NOPE:-default}',
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    const [line] = issuesOf('listen: { port: 80\nroutes: []\n');
    expect(line).toMatch(/^gateway\.yaml:\d+:\d+ invalid YAML: /);
  });
});
