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

  it('converts an interpolated ${PORT} for a number field, also inside a flow mapping', () => {
    const text = 'listen: { port: ${PORT} }\nroutes:\n  - path: /a\n';
    expect(parseConfig(text, schema, 'g', { env: { PORT: '8081' } }).listen.port).toBe(8081);
    expect(issuesOf(text, { PORT: 'eighty' })).toEqual([
      'gateway.yaml:1:17 listen.port: ${PORT} is "eighty", which is not a number: set it to a number like 8080',
    ]);
    // A literal string where a number belongs is still a mistake.
    expect(issuesOf('listen: { port: "8081" }\nroutes: []\n')).toEqual([
      'gateway.yaml:1:17 listen.port: expected number, received string',
    ]);
  });

  it('shows the first YAML syntax error only, with its line and a caret', () => {
    const lines = issuesOf('listen:\n  port: [1, 2\nroutes:\n  - a: b\n  - c: d\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^gateway\.yaml:3:1 invalid YAML: /);
    expect(lines[1]).toBe('  3 | routes:');
    expect(lines[2]).toBe('    | ^');
  });

  it('refuses an alias bomb with the file name', () => {
    const rows = ['a: &a [x,x,x,x,x,x,x,x,x]'];
    for (const n of ['b', 'c', 'd', 'e', 'f']) {
      const prev = String.fromCharCode(n.charCodeAt(0) - 1);
      rows.push(`${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const [line] = issuesOf(`${rows.join('\n')}\n`);
    expect(line).toMatch(/^gateway\.yaml:1:1 refused: Excessive alias count/);
  });

  it('sorts problems by line and says "missing required field" for an absent key', () => {
    expect(issuesOf('routes:\n  - timeout: 1s\nlisten: {}\n')).toEqual([
      'gateway.yaml:2:5 routes[0].path: missing required field "path" (expected string)',
      'gateway.yaml:3:9 listen.port: missing required field "port" (expected number)',
    ]);
  });

  it('points a value of the wrong type at the sibling option that takes it', () => {
    const s = z.strictObject({
      jwks: z.strictObject({ keys: z.array(z.unknown()) }).optional(),
      jwksUrl: z.url().optional(),
      jwksFile: z.string().optional(),
    });
    const err = (() => {
      try {
        parseConfig('jwks: https://idp/.well-known/jwks.json\n', s, 'g.yaml');
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(err).toBe('g.yaml:1:7 jwks: expected object, received string (did you mean "jwksUrl"?)');
  });
});
