import { maskSecrets } from '../../admin/mask.js';
import { createAdminServer } from '../../admin/server.js';
import { TrellisError } from '../../core/errors.js';
import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { inputTopicOf, loadPipelineFile, stageIndex } from '../../pipeline/config.js';
import { HEADERS } from '../../pipeline/pipe.js';
import { readStatus, startPipeline } from '../../pipeline/run.js';
import { pipelinePanel, pipelineStatus } from '../../pipeline/status.js';
import { openKeyValueStore } from '../../stores/kv/index.js';
import { openMessageQueue } from '../../stores/queue/index.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { parseHostPort } from './gateway.js';

const usage = `usage:
  trellis pipeline run FILE [--stage NAME] [--admin HOST:PORT]
  trellis pipeline replay FILE --from-dlq STAGE [--dry-run] [--limit N]
  trellis pipeline status FILE [--json]

run: runs every stage of the pipeline file in this process, or only --stage NAME (start one
process per stage, as many as you like: instances of a stage share its work). Stages talk over
the file's queue; a message is acked only once the next stage or the output has it. SIGTERM
drains: in-flight messages finish, the rest is redelivered to another instance.

replay: moves the dead letters of STAGE back to its input (a progress bar on a terminal).
--dry-run lists them and moves nothing.

status: depth, rate, lag, errors, dead letters and redeliveries per stage, from the records the
running stages write every 2 s to the state store.

options:
  --stage NAME        (run) only this stage
  --admin HOST:PORT   (run) admin listener: /metrics, /healthz, /readyz, /admin/routes (the chain);
                      overrides the file's admin: { host, port }
  --from-dlq STAGE    (replay) the stage whose dead letters to move
  --dry-run           (replay) list, do not move
  --limit N           (replay) move at most N
  --json              (status) print JSON`;

const options = {
  stage: { type: 'string' },
  admin: { type: 'string' },
  'from-dlq': { type: 'string' },
  'dry-run': { type: 'boolean' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
} as const;

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'run' && sub !== 'replay' && sub !== 'status') {
    throw usageError(
      sub
        ? `unknown subcommand "${sub}": use run, replay or status`
        : 'name a subcommand: run, replay or status',
    );
  }
  const { values, positionals } = parseCommandArgs(rest, options);
  const file = positionals[0];
  if (!file) throw usageError('name the pipeline file');
  const p = loadPipelineFile(file);
  if (sub === 'status') return status(p, values.json === true);
  if (sub === 'replay') {
    const stage = values['from-dlq'];
    if (!stage) throw usageError('--from-dlq STAGE is required');
    const limit = values.limit === undefined ? Number.POSITIVE_INFINITY : Number(values.limit);
    if (!(limit > 0)) throw usageError('--limit must be a positive number');
    return replay(p, stage, values['dry-run'] === true, limit);
  }
  const logger = createLogger({ name: 'pipeline' });
  const running = await startPipeline(p, {
    ...(values.stage ? { stage: values.stage } : {}),
    logger,
    onListening: (stage, a) => logger.info({ stage, port: a.port }, 'http input listening'),
  });
  let adminPort: number | undefined;
  const adminAt = values.admin ? parseHostPort(values.admin) : p.admin;
  // The panel reads every instance's status records: its own handle on the state store.
  const statusStore = adminAt ? await openKeyValueStore(p.state) : undefined;
  const here = running.stages.map((s) => s.name);
  const admin =
    adminAt && statusStore
      ? createAdminServer({
          registry: running.registry,
          ready: () => true,
          routes: () => running.describe(),
          services: () => [],
          config: () => maskSecrets(p),
          panels: () => [pipelinePanel(statusStore, p, here)],
        })
      : undefined;
  if (admin && adminAt) adminPort = (await admin.listen(adminAt.host, adminAt.port)).port;
  logger.info(
    {
      pipeline: p.name,
      stages: running.stages.map((s) => s.name),
      ...(adminPort ? { admin: adminPort } : {}),
    },
    'pipeline started',
  );
  const closeAdmin = async () => {
    await admin?.close();
    await statusStore?.close();
  };
  drainOnSignals([{ stop: (ms) => running.stop(ms) }, { stop: closeAdmin }], {
    logger,
  });
  await running.done;
  await running.stop();
  await closeAdmin();
  logger.info({ pipeline: p.name }, 'pipeline finished: every input was read');
  return 0;
}

async function status(p: ReturnType<typeof loadPipelineFile>, json: boolean): Promise<number> {
  const store = await openKeyValueStore(p.state);
  try {
    const rows = await pipelineStatus(store, p);
    if (json) {
      process.stdout.write(`${JSON.stringify({ pipeline: p.name, stages: rows }, null, 2)}\n`);
      return 0;
    }
    const head = ['STAGE', 'UP', 'IN', 'OUT', 'DEPTH', 'RATE/S', 'LAG', 'ERRORS', 'DLQ', 'REDELIVERED'];
    const table = [
      head,
      ...rows.map((r) => [
        r.stage,
        String(r.instances),
        String(r.in),
        String(r.out),
        r.depth === undefined ? '-' : String(r.depth),
        String(r.rate),
        `${r.lagSeconds.toFixed(2)}s`,
        String(r.errors),
        String(r.deadLetters),
        String(r.redeliveries),
      ]),
    ];
    const widths = head.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
    for (const row of table) process.stdout.write(`${row.map((v, c) => v.padEnd(widths[c]!)).join('  ')}\n`);
    return 0;
  } finally {
    await store.close();
  }
}

async function replay(
  p: ReturnType<typeof loadPipelineFile>,
  stage: string,
  dryRun: boolean,
  limit: number,
): Promise<number> {
  const i = stageIndex(p, stage);
  const input = inputTopicOf(p, i);
  if (input === undefined && !dryRun) {
    // A first stage reading a file, HTTP or a schedule reads no pipe: whatever was put back
    // would sit on a topic no stage consumes, and be gone from the DLQ.
    const kind = Object.keys(p.stages[i]!.input ?? {})[0] ?? 'input';
    throw new TrellisError(
      'TRELLIS_E_PIPELINE_REPLAY_REFUSED',
      `stage "${stage}" reads a ${kind} input, not a pipe, so its dead letters cannot be put back on its input: ` +
        `list them with --dry-run and send them to the source again (the DLQ keeps them)`,
    );
  }
  const target = input ?? stage;
  const dlq = `${target}.dlq`;
  const queue = await openMessageQueue(p.queue);
  const state = await openKeyValueStore(p.state);
  // The total is what the stage reported dead-lettered; replayed ones are no longer in the DLQ.
  const reported = (await readStatus(state, p.name).catch(() => []))
    .filter((r) => r.stage === stage)
    .reduce((a, r) => a + r.deadLettered, 0);
  await state.close();
  const tty = process.stderr.isTTY === true;
  const started = Date.now();
  let moved = 0;
  const seen = new Set<string>();
  const progress = () => {
    const total = Math.min(limit, Math.max(reported, moved));
    const rate = (moved * 1000) / Math.max(1, Date.now() - started);
    if (!tty) return;
    const width = 30;
    const filled = total > 0 ? Math.round((moved / total) * width) : 0;
    process.stderr.write(
      `\r[${'#'.repeat(Math.min(width, filled)).padEnd(width, '.')}] ${moved}/${total || '?'}  ${rate.toFixed(1)}/s`,
    );
  };
  let last = Date.now();
  let finish!: () => void;
  const finished = new Promise<void>((r) => {
    finish = r;
  });
  const consumer = await queue.consume(
    dlq,
    'trellis-replay',
    async (d) => {
      if (moved >= limit) return d.nack({ delayMs: 1000 });
      if (dryRun) {
        // Seen before: the DLQ went round once. The run ends when no new one came for a while.
        if (seen.has(d.id)) return d.nack({ delayMs: 3000 });
        last = Date.now();
        seen.add(d.id);
        moved++;
        process.stdout.write(
          `${JSON.stringify({
            id: d.headers[HEADERS.id] ?? d.id,
            key: d.key,
            filter: d.headers['trellis-dead-letter-filter'],
            reason: d.headers['trellis-dead-letter-reason'],
            deliveries: Number(d.headers['trellis-deliveries'] ?? 0),
            payload: d.payload,
          })}\n`,
        );
        // Leave it in the DLQ, visible again in 3 s (a real replay right after still finds it).
        return d.nack({ delayMs: 3000 });
      }
      last = Date.now();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(d.headers)) {
        // Chain positions are dropped: a replayed message is new to its key's chain.
        if (
          k.startsWith('trellis-dead-letter') ||
          k === 'trellis-deliveries' ||
          k === HEADERS.seq ||
          k === HEADERS.part ||
          k === HEADERS.prev
        )
          continue;
        headers[k] = v;
      }
      headers[HEADERS.sentAt] = String(Date.now());
      await queue.publish(target, d.payload, {
        ...(d.key === undefined ? {} : { key: d.key }),
        headers,
        // A new publish id (the dedupe window would drop the original id); the idempotency key stays.
        id: `${headers[HEADERS.id] ?? d.id}:replay:${Date.now().toString(36)}`,
      });
      moved++;
      progress();
      if (moved >= limit) finish();
    },
    { concurrency: 16, maxDeliver: 1000 },
  );
  const idle = setInterval(() => {
    progress();
    // A dry run just before may have left messages invisible for up to 3 s.
    if (Date.now() - last > (dryRun ? 2000 : 5000)) finish();
  }, 250);
  await finished;
  clearInterval(idle);
  await consumer.stop();
  await queue.close();
  if (tty) process.stderr.write('\n');
  process.stderr.write(
    `${dryRun ? 'would replay' : 'replayed'} ${moved} message(s) from ${dlq} to ${target}\n`,
  );
  return 0;
}

export const pipelineCommand: Command = {
  name: 'pipeline',
  summary: 'run a pipes-and-filters pipeline file, replay its dead letters, show its status',
  usage,
  run,
};
