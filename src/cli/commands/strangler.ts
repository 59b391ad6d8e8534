import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { loadConfigFile } from '../../core/config.js';
import { TrellisError } from '../../core/errors.js';
import { openKeyValueStore } from '../../stores/kv/index.js';
import type { KeyValueStore } from '../../stores/types.js';
import { type RouteSnapshot, readSnapshots } from '../../strangler/reports.js';
import { defaultStateStore, MigrationState, type Mode } from '../../strangler/state.js';
import { checkMode, describeState, stepRoute } from '../../strangler/step.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage: trellis strangler set ROUTE --mode MODE [--weight W] [--reverse-shadow] [--reason TEXT] [--force]
       trellis strangler status [--admin URL]
       trellis strangler report ROUTE [--top N]
       trellis strangler history ROUTE
  each with [--config FILE | --store URL] [--prefix P] [--json]

set       change a strangled route's mode (legacy, shadow, canary, modern, retired) and canary
          weight; every gateway following the store applies it within a second. A bad mode or
          weight is refused and nothing changes. A step forward is refused while a gateway's
          guard rails have not seen their minimum sample of the modern side (--force overrides).
status    each route's mode, weight, traffic split, mismatch rate and error rates side by side,
          from every gateway instance's published evidence (and --admin URL's live counters)
report    the route's top mismatching fields, with an example of both values, and the last
          mismatches kept (secrets redacted)
history   every change of the route's state: when, who, what, why

options:
  --config FILE   the gateway file: the store is the one its strangler routes name (default
                  ./gateway.yaml when it exists)
  --store URL     the migration state's store (sqlite:PATH, postgres://, redis://, etcd://)
  --prefix P      the state's key prefix (default trellis/strangler/)
  --mode MODE     set: legacy, shadow, canary, modern or retired
  --weight W      set: per cent of keys on the modern side in canary mode (0 < W < 100)
  --reverse-shadow  set: in modern mode, keep copying requests to legacy and comparing
  --reason TEXT   set: why, kept in the history
  --by NAME       set: the author (default: your user name)
  --force         set: step forward without the guard rails' minimum sample
  --admin URL     status: a gateway's admin listener, for its live counters (/metrics)
  --top N         report: fields shown (default 10)
  --json          print JSON`;

const options = {
  config: { type: 'string' },
  store: { type: 'string' },
  prefix: { type: 'string' },
  mode: { type: 'string' },
  weight: { type: 'string' },
  'reverse-shadow': { type: 'boolean' },
  reason: { type: 'string' },
  by: { type: 'string' },
  force: { type: 'boolean' },
  admin: { type: 'string' },
  top: { type: 'string' },
  json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof options>>['values'];

/** Just what the CLI needs of a gateway file: where strangler routes keep their state. */
const gatewayFile = z.looseObject({
  stores: z.record(z.string(), z.string()).optional(),
  routes: z
    .array(
      z.looseObject({
        name: z.string().optional(),
        strangler: z
          .looseObject({ store: z.string().optional(), statePrefix: z.string().optional() })
          .optional(),
      }),
    )
    .optional(),
});

/** The store and prefix a route's state lives under, from the flags or the gateway file. */
function locate(values: Values, route: string | undefined): { url: string; prefix: string } {
  const fromFlags = values.prefix ?? 'trellis/strangler/';
  if (values.store !== undefined) return { url: values.store, prefix: fromFlags };
  const file = values.config ?? (existsSync('gateway.yaml') ? 'gateway.yaml' : undefined);
  if (file === undefined)
    throw usageError('name the state store: --store URL, or the gateway file with --config FILE');
  const config = loadConfigFile(resolve(file), gatewayFile);
  const routes = (config.routes ?? []).filter((r) => r.strangler !== undefined);
  const chosen = route === undefined ? routes[0] : routes.find((r) => r.name === route);
  if (chosen === undefined) {
    const names = routes.map((r) => r.name).filter(Boolean);
    throw new TrellisError(
      'TRELLIS_E_STRANGLER_ROUTE_UNKNOWN',
      route === undefined
        ? `${file} has no strangler route`
        : `${file} has no strangler route named "${route}"${names.length > 0 ? `: its strangler routes are ${names.join(', ')}` : ''}`,
    );
  }
  const store = chosen.strangler!.store;
  const url =
    store === undefined
      ? defaultStateStore(dirname(resolve(file)))
      : (config.stores?.[store] ?? (store.includes(':') ? store : undefined));
  if (url === undefined)
    throw new TrellisError(
      'TRELLIS_E_STRANGLER_ROUTE_UNKNOWN',
      `${file}: store "${store}" is not in stores:`,
    );
  return { url, prefix: values.prefix ?? chosen.strangler!.statePrefix ?? fromFlags };
}

async function withStore<T>(
  values: Values,
  route: string | undefined,
  f: (s: KeyValueStore, prefix: string) => Promise<T>,
): Promise<T> {
  const { url, prefix } = locate(values, route);
  const store = await openKeyValueStore(url);
  try {
    return await f(store, prefix);
  } finally {
    await store.close();
  }
}

const print = (values: Values, json: unknown, text: string) =>
  process.stdout.write(values.json ? `${JSON.stringify(json, null, 2)}\n` : text);

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

async function set(route: string, values: Values): Promise<number> {
  if (values.mode === undefined && values.weight === undefined && values['reverse-shadow'] === undefined)
    throw usageError('say what to change: --mode MODE and/or --weight W');
  // Checked before the store is opened: a typo needs no reachable store to be told.
  if (values.mode !== undefined) checkMode(route, values.mode);
  let weight: number | undefined;
  if (values.weight !== undefined) {
    weight = /^\d+(\.\d+)?$/.test(values.weight.trim()) ? Number(values.weight) : Number.NaN;
    if (Number.isNaN(weight)) {
      throw new TrellisError(
        'TRELLIS_E_STRANGLER_STATE_INVALID',
        `${route}: weight "${values.weight}" is not a percentage: write a number from 0 to 100; nothing changed`,
      );
    }
  }
  return withStore(values, route, async (store, prefix) => {
    const { before, written } = await stepRoute(store, prefix, route, {
      ...(values.mode === undefined ? {} : { mode: values.mode as Mode }),
      ...(weight === undefined ? {} : { weight }),
      ...(values['reverse-shadow'] === undefined ? {} : { reverseShadow: values['reverse-shadow'] }),
      by: values.by ?? safeUser(),
      ...(values.reason === undefined ? {} : { reason: values.reason }),
      ...(values.force ? { force: true } : {}),
    });
    print(
      values,
      written,
      `${route}: ${describeState(before)} -> ${describeState(written)} (revision ${written.revision}, by ${written.by})\n`,
    );
    return 0;
  });
}

function safeUser(): string {
  try {
    return userInfo().username || 'cli';
  } catch {
    return 'cli';
  }
}

/** `trellis_strangler_requests_total{route="a",side="legacy",mode="canary"} 12` lines of /metrics. */
async function liveCounters(admin: string): Promise<Map<string, { legacy: number; modern: number }>> {
  const res = await fetch(new URL('/metrics', admin), { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new TrellisError('TRELLIS_E_STRANGLER_ADMIN', `${admin}/metrics answered ${res.status}`);
  const out = new Map<string, { legacy: number; modern: number }>();
  for (const line of (await res.text()).split('\n')) {
    const m = /^trellis_strangler_requests_total\{([^}]*)\} (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = Object.fromEntries(
      [...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]),
    );
    const r = out.get(labels.route!) ?? { legacy: 0, modern: 0 };
    if (labels.side === 'legacy' || labels.side === 'modern') r[labels.side] += Number(m[2]);
    out.set(labels.route!, r);
  }
  return out;
}

/** Sums every instance's snapshot of each route. */
function combine(snaps: RouteSnapshot[]) {
  const byRoute = new Map<string, RouteSnapshot[]>();
  for (const s of snaps) byRoute.set(s.route, [...(byRoute.get(s.route) ?? []), s]);
  return [...byRoute].map(([route, list]) => {
    const sum = (f: (s: RouteSnapshot) => number) => list.reduce((a, s) => a + f(s), 0);
    const compared = sum((s) => s.report.compared);
    const mismatched = sum((s) => s.report.mismatched);
    const legacy = sum((s) => s.split.legacy);
    const modern = sum((s) => s.split.modern);
    return {
      route,
      instances: list.length,
      legacy: list[0]!.legacy,
      modern: list[0]!.modern,
      split: { legacy, modern, retired: sum((s) => s.split.retired) },
      errors: { legacy: sum((s) => s.errors.legacy), modern: sum((s) => s.errors.modern) },
      errorRate: {
        legacy: legacy === 0 ? 0 : sum((s) => s.errors.legacy) / legacy,
        modern:
          modern + sum((s) => s.shadow.sent) === 0
            ? 0
            : sum((s) => s.errors.modern) / (modern + sum((s) => s.shadow.sent)),
      },
      compared,
      mismatched,
      mismatchRate: compared === 0 ? 0 : mismatched / compared,
      shadow: {
        sent: sum((s) => s.shadow.sent),
        dropped: sum((s) => s.shadow.dropped),
        skipped: sum((s) => s.shadow.skipped),
      },
      guard: list.map((s) => s.guard).find((g) => g !== undefined && g !== null),
      lastSeen: list[0]!.at,
    };
  });
}

async function status(values: Values): Promise<number> {
  return withStore(values, undefined, async (store, prefix) => {
    const { states } = await new MigrationState(store, prefix).list();
    const evidence = combine(await readSnapshots(store, prefix));
    const live = values.admin === undefined ? undefined : await liveCounters(values.admin);
    const names = [...new Set([...states.keys(), ...evidence.map((e) => e.route)])].sort();
    const rows = names.map((route) => {
      const s = states.get(route);
      const e = evidence.find((x) => x.route === route);
      const l = live?.get(route);
      return { route, state: s ?? null, evidence: e ?? null, live: l ?? null };
    });
    const lines = rows.map(({ route, state, evidence: e, live: l }) => {
      const split = e ? splitText(e.split.legacy, e.split.modern) : '-';
      return [
        route,
        state ? describeState(state) : "file's mode",
        split,
        l ? splitText(l.legacy, l.modern) : '',
        e ? `${pct(e.mismatchRate)} of ${e.compared}` : '-',
        e ? `${pct(e.errorRate.legacy)} / ${pct(e.errorRate.modern)}` : '-',
        e ? `${e.shadow.sent} sent, ${e.shadow.dropped} dropped` : '-',
        e?.guard
          ? e.guard.verdict.action + ('why' in e.guard.verdict ? ` (${e.guard.verdict.why})` : '')
          : '',
      ];
    });
    const header = [
      'ROUTE',
      'MODE',
      'SPLIT legacy/modern',
      live ? 'LIVE (--admin)' : '',
      'MISMATCHES',
      'ERRORS legacy/modern',
      'SHADOW',
      'GUARD',
    ];
    print(values, rows, table([header, ...lines]));
    return 0;
  });
}

function splitText(legacy: number, modern: number): string {
  const total = legacy + modern;
  if (total === 0) return '0 requests';
  return `${pct(legacy / total)} / ${pct(modern / total)} of ${total}`;
}

function table(rows: string[][]): string {
  const keep = rows[0]!.map((_, i) => rows.some((r, j) => j > 0 && r[i] !== '') || rows[0]![i] !== '');
  const cols = rows.map((r) => r.filter((_, i) => keep[i]));
  const widths = cols[0]!.map((_, i) => Math.max(...cols.map((r) => r[i]!.length)));
  return `${cols
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

async function report(route: string, values: Values): Promise<number> {
  const top = values.top === undefined ? 10 : Number(values.top);
  if (!Number.isInteger(top) || top < 1) throw usageError(`--top takes a whole number, not "${values.top}"`);
  return withStore(values, route, async (store, prefix) => {
    const snaps = await readSnapshots(store, prefix, route);
    if (snaps.length === 0) {
      print(
        values,
        { route, instances: 0 },
        `${route}: no evidence yet (no gateway has compared answers on this route)\n`,
      );
      return 0;
    }
    const fields = new Map<string, { path: string; count: number; example: unknown }>();
    for (const s of snaps) {
      for (const f of s.report.fields) {
        const prev = fields.get(f.path);
        fields.set(f.path, {
          path: f.path,
          count: (prev?.count ?? 0) + f.count,
          example: prev?.example ?? f.example,
        });
      }
    }
    const [summary] = combine(snaps);
    const ranked = [...fields.values()].sort((a, b) => b.count - a.count).slice(0, top);
    const recent = snaps
      .flatMap((s) => s.report.recent)
      .sort((a, b) => b.at.localeCompare(a.at))
      .slice(0, 5);
    const noise = snaps.flatMap((s) => Object.keys(s.report.noise.paths));
    const json = { route, ...summary, fields: ranked, noise: [...new Set(noise)], recent };
    const lines = [
      `${route}: ${summary!.mismatched} mismatches in ${summary!.compared} comparisons (${pct(summary!.mismatchRate)}), ${snaps.reduce((a, s) => a + s.report.failed, 0)} copies without an answer, from ${snaps.length} instance(s)`,
      `status mismatches ${snaps.reduce((a, s) => a + s.report.statusMismatches, 0)}, ordering-only differences ${snaps.reduce((a, s) => a + s.report.reorderings, 0)}`,
      noise.length > 0
        ? `noise (differs legacy against legacy, suppressed): ${[...new Set(noise)].join(', ')}`
        : 'noise: none learnt',
      '',
      ranked.length === 0 ? 'no mismatching fields' : 'top mismatching fields:',
      ...ranked.map((f) => {
        const ex = f.example as { primary: unknown; candidate: unknown; requestId: string };
        return `  ${String(f.count).padStart(6)}  ${f.path}   e.g. ${short(ex.primary)} -> ${short(ex.candidate)} (request ${ex.requestId})`;
      }),
    ];
    if (recent.length > 0) {
      lines.push('', 'last mismatches:');
      for (const m of recent) {
        const d = m.difference;
        const what = [
          d.status ? `status ${d.status[0]} -> ${d.status[1]}` : '',
          ...Object.keys(d.headers).map((h) => `header ${h}`),
          ...d.changed,
          ...d.reordered.map((r) => `${r} (order)`),
        ].filter(Boolean);
        lines.push(`  ${m.at} ${m.method} ${m.path} (${m.requestId}): ${what.join(', ')}`);
      }
    }
    print(values, json, `${lines.join('\n')}\n`);
    return 0;
  });
}

function short(v: unknown): string {
  const s = v === undefined ? '(absent)' : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

async function history(route: string, values: Values): Promise<number> {
  return withStore(values, route, async (store, prefix) => {
    const entries = await new MigrationState(store, prefix).history(route);
    const text =
      entries.length === 0
        ? `${route}: never changed (the file's mode applies)\n`
        : `${entries.map((e) => `${e.at}  ${describeState(e).padEnd(12)}  by ${e.by}${e.reason ? `: ${e.reason}` : ''}`).join('\n')}\n`;
    print(values, entries, text);
    return 0;
  });
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, options);
  const [sub, route, ...extra] = positionals;
  if (extra.length > 0) throw usageError(`unexpected argument "${extra[0]}"`);
  switch (sub) {
    case 'status':
      if (route !== undefined) throw usageError(`unexpected argument "${route}"`);
      return status(values);
    case 'set':
    case 'report':
    case 'history':
      if (route === undefined) throw usageError(`name the route: trellis strangler ${sub} ROUTE`);
      return sub === 'set'
        ? set(route, values)
        : sub === 'report'
          ? report(route, values)
          : history(route, values);
    default:
      throw usageError(
        sub
          ? `unknown subcommand "${sub}": use set, status, report or history`
          : 'name a subcommand: set, status, report or history',
      );
  }
}

export const stranglerCommand: Command = {
  name: 'strangler',
  summary: 'Strangler Fig migrations: set a route mode, status, mismatch report, history',
  usage,
  run,
};
