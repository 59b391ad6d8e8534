import { afterAll, describe, expect, it } from 'vitest';
import { runCli, type TempDir, tempDir } from '../support/index.js';

/**
 * `trellis pipeline replay` of a first stage that reads a file: its dead letters have no pipe to
 * go back to (nothing consumes a topic named after the stage), so a replay is refused and the
 * dead letters stay where `--dry-run` finds them.
 */
const dirs: TempDir[] = [];
afterAll(() => {
  for (const d of dirs) d.cleanup();
});

describe('pipeline status and replay', () => {
  it('refuses to replay a file-input stage, leaving its dead letters in the DLQ', {
    timeout: 60_000,
  }, async () => {
    const dir = tempDir('trellis-pipeline-replay-');
    dirs.push(dir);
    dir.write('orders.ndjson', '{"n":1,"price":2}\n{"n":2,"price":"two"}\n');
    dir.write(
      'pipeline.yaml',
      [
        'name: replay',
        'queue: sqlite:./pipes.db',
        'stages:',
        '  - name: price',
        '    input: { file: { path: ./orders.ndjson } }',
        '    maxDeliveries: 1',
        '    processors:',
        `      - map: { jsonata: '$merge([$, {"total": $number(price)}])' }`,
        '  - name: store',
        '    output: { file: { path: ./out.ndjson } }',
        '',
      ].join('\n'),
    );
    const opts = { cwd: dir.path, env: { TRELLIS_LOG_LEVEL: 'warn' } };
    expect((await runCli(['pipeline', 'run', 'pipeline.yaml', '--stage', 'price'], opts)).code).toBe(0);

    // The stage finished (its file was read): its counts stay, it is no longer up.
    const status = await runCli(['pipeline', 'status', 'pipeline.yaml', '--json'], opts);
    expect(JSON.parse(status.stdout).stages[0]).toMatchObject({
      stage: 'price',
      instances: 0,
      in: 2,
      out: 1,
      deadLetters: 1,
    });

    const listed = await runCli(
      ['pipeline', 'replay', 'pipeline.yaml', '--from-dlq', 'price', '--dry-run'],
      opts,
    );
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain('"id":"./orders.ndjson:2"');

    const replay = await runCli(['pipeline', 'replay', 'pipeline.yaml', '--from-dlq', 'price'], opts);
    expect(replay.code).toBe(1);
    expect(replay.stderr).toContain('TRELLIS_E_PIPELINE_REPLAY_REFUSED');
    expect(replay.stderr).toContain('reads a file input');

    const again = await runCli(
      ['pipeline', 'replay', 'pipeline.yaml', '--from-dlq', 'price', '--dry-run'],
      opts,
    );
    expect(again.stdout).toContain('"id":"./orders.ndjson:2"');
  });
});
