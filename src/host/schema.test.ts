import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/config.js';
import { parseHostConfig } from './host.js';

const parse = (text: string) => parseHostConfig(text, 'host.yaml');
const problems = (text: string) => {
  try {
    parse(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('accepted');
};

describe('host file', () => {
  it('fills the defaults a user would expect', () => {
    const cfg = parse('workloads:\n  api: { kind: http, module: ./api.mjs, mount: /api }\n');
    const api = cfg.workloads.api!;
    expect(api).toMatchObject({
      isolation: 'thread',
      limits: { heap: 256 * 1024 * 1024, eventLoop: 5000 },
      restart: { maxRestarts: 5, window: 60_000, backoff: { base: 100, max: 10_000 } },
    });
    expect(cfg.admin.port).toBe(9902);
  });

  it('reads units and every kind', () => {
    const cfg = parse(`workloads:
  api: { kind: http, module: ./a.mjs, listen: { port: 0 }, limits: { heap: 64mb, eventLoop: 2s } }
  mail: { kind: consumer, module: ./m.mjs, queue: "memory:", topic: orders, group: mail, concurrency: 4 }
  nightly: { kind: schedule, module: ./n.mjs, cron: "0 3 * * *" }
  pdf: { kind: taskPool, module: ./p.mjs, size: 3, runTimeout: 10s, isolation: process, limits: { rss: 300mb } }
`);
    expect(cfg.workloads.api!.limits).toMatchObject({ heap: 64 * 1024 * 1024, eventLoop: 2000 });
    expect(cfg.workloads.pdf).toMatchObject({
      size: 3,
      runTimeout: 10_000,
      limits: { rss: 300 * 1024 * 1024 },
    });
  });

  it('says what is wrong, with the line', () => {
    expect(problems('workloads:\n  api: { kind: http, module: ./a.mjs }\n')).toMatch(
      /host\.yaml:2.*mount path or its own listen/,
    );
    expect(
      problems('workloads:\n  api: { kind: http, module: ./a.mjs, mount: /a, limits: { rss: 1mb } }\n'),
    ).toMatch(/limits\.rss applies to isolation: process/);
    expect(
      problems('workloads:\n  api: { kind: http, module: ./a.mjs, mount: /a, dependsOn: [db] }\n'),
    ).toMatch(/depends on "db", which is not a workload/);
    expect(problems('workloads:\n  api: { kind: htp, module: ./a.mjs }\n')).toMatch(/kind/);
  });
});
