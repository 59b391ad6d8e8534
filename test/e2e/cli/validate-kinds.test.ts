import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type TempDir, tempDir } from '../support/index.js';

/**
 * `trellis validate` checks every kind of file the CLI runs, telling the kind from the file's
 * top-level keys, so a folder of mixed files can be checked in one call before a deploy.
 */
let dir: TempDir;
beforeAll(() => {
  dir = tempDir('trellis-validate-kinds-');
  dir.write('job.mjs', 'export default async () => {};\n');
});
afterAll(() => dir.cleanup());

const valid: Record<string, string> = {
  gateway: 'listen: { port: 18080 }\nroutes:\n  - { match: { path: / }, respond: { status: 204 } }\n',
  sidecar: 'app: { name: orders, port: 13000 }\nlisten: { port: 18081 }\n',
  ambassador:
    'remotes:\n  payments:\n    listen: { port: 17001 }\n    service: { upstreams: [http://127.0.0.1:9] }\n',
  host: 'workloads:\n  nightly: { kind: schedule, module: ./job.mjs, cron: "0 3 * * *" }\n',
  pipeline:
    'stages:\n  - name: parse\n    input: { file: { path: ./in.ndjson } }\n    outputs: [{ file: { path: ./out.ndjson } }]\n',
};

describe('trellis validate, every kind of file', () => {
  it('tells each kind from its keys and says which it checked', async () => {
    const files = Object.entries(valid).map(([kind, yaml]) => dir.write(`${kind}.yaml`, yaml));
    const r = await runCli(['validate', ...files]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual(
      Object.keys(valid).map((kind, i) => `${files[i]}: ok (${kind})`),
    );
  });

  it('reports a mistake in each kind at its line, with the path, and exits 1', async () => {
    const cases: Array<[string, string, RegExp]> = [
      [
        'sidecar',
        'app: { name: orders, port: 13000 }\nlisten: { port: 18081 }\npubsub: { url: nope }\n',
        /:3:\d+ pubsub\.url: /,
      ],
      [
        'ambassador',
        'remotes:\n  payments:\n    listen: { port: 17001 }\n    timeuot: 3s\n    service: { upstreams: [http://127.0.0.1:9] }\n',
        /:4:\d+ remotes\.payments\.timeuot: .*timeout/,
      ],
      [
        'host',
        'workloads:\n  nightly: { kind: schedule, module: ./job.mjs, crn: "0 3 * * *" }\n',
        /:2:\d+ workloads\.nightly/,
      ],
      ['pipeline', 'stages:\n  - name: parse\n    concurrency: -1\n', /:3:\d+ stages\[0\]\.concurrency: /],
    ];
    for (const [kind, yaml, expected] of cases) {
      const file = dir.write(`bad-${kind}.yaml`, yaml);
      const r = await runCli(['validate', file]);
      expect(r.code, `${kind}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr, kind).toMatch(expected);
      expect(r.stdout, kind).toBe('');
    }
  });

  it("checks that a host's workload modules exist, relative to the host file", async () => {
    const file = dir.write(
      'host-missing.yaml',
      'workloads:\n  a: { kind: schedule, module: ./job.mjs, cron: "* * * * *" }\n  b: { kind: schedule, module: ./gone.mjs, cron: "* * * * *" }\n',
    );
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/:3:\d+ workloads\.b\.module: no file \.\/gone\.mjs/);
    expect(r.stderr).not.toMatch(/workloads\.a/);
  });

  it('--kind overrides the guess; a wrong --kind is a usage error', async () => {
    const file = dir.write('odd.yaml', valid.sidecar!);
    const asGateway = await runCli(['validate', '--kind', 'gateway', file]);
    expect(asGateway.code).toBe(1);
    expect(asGateway.stderr).toMatch(/app/);
    const wrong = await runCli(['validate', '--kind', 'sidcar', file]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/--kind must be one of gateway, sidecar, ambassador, host, pipeline/);
  });
});
