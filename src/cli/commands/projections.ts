import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { messageOf, TrellisError } from '../../core/errors.js';
import type { Projection, RebuildProgress } from '../../cqrs/projection.js';
import { projectionStatus, rebuildProjection, runProjection } from '../../cqrs/projection.js';
import { openEventStore } from '../../stores/events/index.js';
import type { EventStore } from '../../stores/events/types.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage: trellis projections <status|rebuild|run> [NAME…] --module FILE --store URL [options]

  status              each projection's position, lag behind the event store, and any unfinished rebuild
  rebuild NAME        replay every event into a fresh copy of NAME's read model, then swap it in;
                      queries keep reading the old copy meanwhile; an interrupted rebuild resumes
  run [NAME…]         run asynchronous projections (all when no NAME) until SIGINT/SIGTERM;
                      on one instance only: trellis leader run --group G --store URL -- trellis projections run …

options:
  --module FILE       an ES module exporting \`projections\` (or a default export): an array of
                      projection objects (see docs/cqrs.md); env TRELLIS_PROJECTIONS_MODULE
  --store URL         the event store: sqlite:PATH or postgres://…; env TRELLIS_EVENT_STORE
  --table NAME        the events table (default trellis_events)
  --json              status as JSON`;

const options = {
  module: { type: 'string' },
  store: { type: 'string' },
  table: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function parse(argv: string[]) {
  return parseCommandArgs(argv, options);
}

/** Loads the user's projections: the CLI cannot know them otherwise. */
async function loadProjections(file: string): Promise<Projection[]> {
  let mod: { projections?: unknown; default?: unknown };
  try {
    mod = await import(pathToFileURL(resolve(file)).href);
  } catch (err) {
    // Node loads .ts only through a loader: say how, instead of "unknown file extension".
    const hint =
      (err as { code?: string }).code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(file)
        ? `: a TypeScript module needs a loader: run NODE_OPTIONS='--import tsx' trellis projections …, or compile it to .js`
        : '';
    throw new TrellisError('TRELLIS_E_PROJECTION_MODULE', `cannot load ${file}: ${messageOf(err)}${hint}`, {
      cause: err,
    });
  }
  const list = mod.projections ?? mod.default;
  const ok =
    Array.isArray(list) &&
    list.every(
      (p) => p && typeof p.name === 'string' && typeof p.apply === 'function' && Array.isArray(p.tables),
    );
  if (!ok) {
    throw new TrellisError(
      'TRELLIS_E_PROJECTION_MODULE',
      `${file} must export \`projections\` (or a default export): an array of { name, tables, setup, apply }`,
    );
  }
  return list as Projection[];
}

function pick(all: Projection[], names: string[]): Projection[] {
  return names.map((n) => {
    const p = all.find((x) => x.name === n);
    if (!p) {
      throw new TrellisError(
        'TRELLIS_E_PROJECTION_UNKNOWN',
        `no projection "${n}" in the module: it has ${all.map((x) => x.name).join(', ') || 'none'}`,
      );
    }
    return p;
  });
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function progressPrinter(): (p: RebuildProgress) => void {
  const tty = process.stderr.isTTY === true;
  let last = 0;
  return (p) => {
    const now = Date.now();
    const finished = p.done >= p.total;
    if (!tty && !finished && now - last < 1000) return;
    last = now;
    const pct = p.total ? Math.floor((p.done / p.total) * 100) : 100;
    const line = `rebuild ${p.name}: ${fmt(p.done)}/${fmt(p.total)} events (${pct}%), ${fmt(p.rate)} events/s, ~${Math.ceil(p.secondsLeft)}s left`;
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  };
}

/** Aborts on the first SIGINT/SIGTERM so work stops at a batch boundary. */
function stopOnSignals(): AbortController {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac;
}

export const projectionsCommand: Command = {
  name: 'projections',
  summary: 'CQRS projections: status, rebuild NAME, run',
  usage,
  async run(argv) {
    const { values, positionals } = parse(argv);
    const [action, ...names] = positionals;
    const file = values.module ?? process.env.TRELLIS_PROJECTIONS_MODULE;
    const url = values.store ?? process.env.TRELLIS_EVENT_STORE;
    if (!action || !['status', 'rebuild', 'run'].includes(action)) {
      throw usageError('say what to do: status, rebuild NAME or run');
    }
    if (!file) throw usageError('--module FILE is required (the module exporting your projections)');
    if (!url) throw usageError('--store URL is required (sqlite:PATH or postgres://…)');
    if (action === 'rebuild' && names.length !== 1)
      throw usageError('rebuild takes exactly one projection NAME');
    const all = await loadProjections(file);
    const chosen = names.length ? pick(all, names) : all;
    // status only reads: a mistyped sqlite path is refused, not created (TRELLIS_E_STORE_NOT_FOUND).
    const store: EventStore = await openEventStore(url, {
      ...(values.table ? { table: values.table } : {}),
      readOnly: action === 'status',
    });
    try {
      if (action === 'status') {
        const rows = await projectionStatus(store, chosen);
        if (values.json) {
          process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          return 0;
        }
        const width = Math.max(4, ...rows.map((r) => r.name.length));
        process.stdout.write(`${'NAME'.padEnd(width)}  COPY  POSITION  LAG  REBUILD\n`);
        for (const r of rows) {
          const rebuild = r.rebuild
            ? `copy ${r.rebuild.generation} at ${r.rebuild.position} (resume with rebuild)`
            : '-';
          process.stdout.write(
            `${r.name.padEnd(width)}  ${String(r.generation).padEnd(4)}  ${String(r.position).padEnd(8)}  ${String(r.lag).padEnd(3)}  ${rebuild}\n`,
          );
        }
        return 0;
      }
      const ac = stopOnSignals();
      if (action === 'rebuild') {
        const status = await rebuildProjection(store, chosen[0]!, {
          signal: ac.signal,
          onProgress: progressPrinter(),
        });
        process.stderr.write('\n');
        process.stdout.write(
          `rebuilt ${status.name}: copy ${status.generation}, position ${status.position}\n`,
        );
        return 0;
      }
      process.stderr.write(`running ${chosen.map((p) => p.name).join(', ')} (Ctrl-C to stop)\n`);
      await Promise.all(
        chosen.map((p) =>
          runProjection(store, p, {
            signal: ac.signal,
            onError: (err) => process.stderr.write(`${p.name}: ${messageOf(err)} (retrying)\n`),
          }),
        ),
      );
      return 0;
    } finally {
      await store.close();
    }
  },
};
