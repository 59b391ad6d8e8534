import { userInfo } from 'node:os';
import { parse as parseYaml } from 'yaml';
import type { ConfigApi, ConfigChange } from '../../config/api.js';
import { openConfigApi } from '../../config/client.js';
import { diffValues, formatDiff } from '../../config/diff.js';
import { DEFAULT_LABEL, type DocumentFormat, detectFormat, parseContent } from '../../config/document.js';
import { ConfigRepository } from '../../config/repository.js';
import { startConfigServer } from '../../config/server.js';
import { readConfigText } from '../../core/config.js';
import { isTrellisError, messageOf, TrellisError } from '../../core/errors.js';
import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { didYouMean } from '../../core/suggest.js';
import { gatewayDocumentValidator } from '../../gateway/document-validator.js';
import { openKeyValueStore } from '../../stores/kv/index.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage:
  trellis config serve --store URL [--listen HOST:PORT] [--read-token T] [--write-token T]
                       [--schema PREFIX=FILE …] [--validator PREFIX=gateway …] [--insecure]
  trellis config get KEY            [target] [--label L] [--json]
  trellis config set KEY [FILE|-]   [target] [--label L] [--if-match REV | --create]
                                    [--format json|yaml] [--message M] [--author A]
  trellis config delete KEY         [target] [--label L] [--if-match REV] [--message M]
  trellis config list [PREFIX]      [target] [--label L] [--json]
  trellis config watch [PREFIX]     [target] [--label L] [--from REV] [--json]
  trellis config history KEY        [target] [--label L] [--json]
  trellis config rollback KEY REV   [target] [--label L] [--message M]
  trellis config diff KEY [FILE|-]  [target] [--label L]
  trellis config schema set PREFIX [FILE] [--validator gateway] | list | delete PREFIX   [target]

target (one of):
  --server URL   a \`trellis config serve\` (or $TRELLIS_CONFIG_SERVER), with --token T
                 (or $TRELLIS_CONFIG_TOKEN): a read token reads, the write token writes
  --store URL    the store itself (or $TRELLIS_CONFIG_STORE): sqlite:PATH, postgres://…,
                 redis://…, etcd://host:port

A schema bound to a prefix refuses writes that do not match it (422, nothing written); with
--validator gateway the prefix is checked by the gateway's own validator, so a gateway document
the gateway would refuse is refused here with the same KEY:LINE:COL messages.

Keys are like shop/gateway (no ".", ".." or empty segments); labels (default "${DEFAULT_LABEL}") separate environments.
serve reads tokens from $TRELLIS_CONFIG_READ_TOKEN / $TRELLIS_CONFIG_WRITE_TOKEN too; without
a write token it refuses to start unless --insecure. Secret values never pass through here:
documents hold references (secret://env/NAME, secret://file/PATH) that clients resolve.`;

const options = {
  store: { type: 'string' },
  server: { type: 'string' },
  token: { type: 'string' },
  label: { type: 'string' },
  json: { type: 'boolean' },
  'if-match': { type: 'string' },
  create: { type: 'boolean' },
  format: { type: 'string' },
  message: { type: 'string', short: 'm' },
  author: { type: 'string' },
  from: { type: 'string' },
  listen: { type: 'string' },
  'read-token': { type: 'string' },
  'write-token': { type: 'string' },
  schema: { type: 'string', multiple: true },
  validator: { type: 'string', multiple: true },
  insecure: { type: 'boolean' },
  root: { type: 'string' },
} as const;

type Values = ReturnType<typeof parse>['values'];

function parse(argv: string[]) {
  return parseCommandArgs(argv, options);
}

const out = (line: string) => process.stdout.write(`${line}\n`);

async function target(v: Values, readOnly = false): Promise<ConfigApi> {
  if (v.server !== undefined && v.store !== undefined) throw usageError('give --server or --store, not both');
  // A flag on the command line wins over the environment.
  const server = v.store === undefined ? (v.server ?? process.env.TRELLIS_CONFIG_SERVER) : undefined;
  const store = v.store ?? process.env.TRELLIS_CONFIG_STORE;
  if (server) return openConfigApi(server, v.token ?? process.env.TRELLIS_CONFIG_TOKEN);
  if (store) return repository(store, v, readOnly);
  throw usageError('say where the configuration is: --server URL or --store URL');
}

/** Validators this CLI provides to the store, by the name a prefix is bound with. */
const VALIDATORS = { gateway: gatewayDocumentValidator };

async function repository(url: string, v: Values, readOnly = false): Promise<ConfigRepository> {
  return new ConfigRepository(await openKeyValueStore(url, { readOnly }), {
    ...(v.root ? { root: v.root } : {}),
    validators: VALIDATORS,
  });
}

async function readInput(file: string | undefined): Promise<string> {
  if (file === undefined || file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }
  return readConfigText(file);
}

function revisionArg(raw: string | undefined, what: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw.replace(/"/g, ''));
  if (!Number.isSafeInteger(n) || n < 0) throw usageError(`${what} must be a revision number, got ${raw}`);
  return n;
}

function formatArg(raw: string | undefined): DocumentFormat | undefined {
  if (raw === undefined) return undefined;
  if (raw !== 'json' && raw !== 'yaml') throw usageError(`--format must be json or yaml, got ${raw}`);
  return raw;
}

const author = (v: Values) =>
  v.author ?? process.env.TRELLIS_AUTHOR ?? process.env.USER ?? userInfo().username;

function need(value: string | undefined, what: string): string {
  if (!value) throw usageError(`give the ${what}`);
  return value;
}

async function serve(v: Values): Promise<number> {
  const url = need(v.store ?? process.env.TRELLIS_CONFIG_STORE, 'store: --store URL');
  const readToken = v['read-token'] ?? process.env.TRELLIS_CONFIG_READ_TOKEN;
  const writeToken = v['write-token'] ?? process.env.TRELLIS_CONFIG_WRITE_TOKEN;
  if (!writeToken && !v.insecure) {
    throw usageError(
      'set a write token (--write-token or TRELLIS_CONFIG_WRITE_TOKEN), or pass --insecure for local use',
    );
  }
  const [host, portText] = (v.listen ?? '127.0.0.1:7070').split(/:(?=\d+$)/);
  const port = Number(portText ?? 7070);
  if (!host || !Number.isInteger(port)) throw usageError(`--listen must be HOST:PORT, got ${v.listen}`);
  const logger = createLogger({ name: 'trellis-config' });
  const repo = await repository(url, v);
  for (const binding of v.validator ?? []) {
    const eq = binding.indexOf('=');
    if (eq < 0) throw usageError(`--validator must be PREFIX=NAME, like shop/=gateway, got ${binding}`);
    await repo.setSchema(binding.slice(0, eq), undefined, {
      validator: binding.slice(eq + 1),
      author: `serve --validator ${binding}`,
    });
  }
  for (const binding of v.schema ?? []) {
    const eq = binding.indexOf('=');
    if (eq <= 0) throw usageError(`--schema must be PREFIX=FILE, got ${binding}`);
    const file = binding.slice(eq + 1);
    await repo.setSchema(binding.slice(0, eq), parseYaml(readConfigText(file)), {
      author: `serve --schema ${file}`,
    });
  }
  if (!readToken) logger.warn('no read token: anyone who can reach the server can read configuration');
  if (!writeToken) logger.warn('--insecure: anyone who can reach the server can change configuration');
  const server = await startConfigServer({ api: repo, host, port, readToken, writeToken, logger });
  logger.info({ url: server.url }, 'config server listening');
  out(`trellis config serve: listening on ${server.url}`);
  await new Promise<void>((resolve) => {
    drainOnSignals(
      [
        {
          stop: async () => {
            await server.close();
            await repo.close();
          },
        },
      ],
      { logger, exit: () => resolve() },
    );
  });
  return 0;
}

async function watch(api: ConfigApi, prefix: string, v: Values): Promise<number> {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let from = revisionArg(v.from, '--from');
  // What each key held before, so a change prints as a diff; a key first seen prints its value.
  const known = new Map<string, unknown>();
  if (from === undefined && !v.json) {
    // Start from a listing and watch from its revision: the baseline and the stream agree.
    const listing = await api.list(prefix, v.label);
    for (const d of listing.documents) known.set(d.key, d.value);
    from = listing.revision;
  }
  // On stderr, so stdout stays the changes only; says the watch is in place.
  process.stderr.write(
    `watching ${prefix || '(every key)'}@${v.label ?? DEFAULT_LABEL} ${from === undefined ? 'from now' : `after revision ${from}`}\n`,
  );
  let attempt = 0;
  try {
    while (!ac.signal.aborted) {
      try {
        for await (const c of api.watch(prefix, { label: v.label, fromRevision: from, signal: ac.signal })) {
          attempt = 0;
          from = c.revision;
          if (v.json) out(JSON.stringify(c));
          else out(describeChange(c, known));
        }
        if (ac.signal.aborted) break;
      } catch (err) {
        if (ac.signal.aborted) break;
        if (isTrellisError(err, 'TRELLIS_E_KV_WATCH_GAP')) {
          const { revision } = await api.list(prefix, v.label);
          process.stderr.write(
            `changes before revision ${revision} are no longer available; continuing from there\n`,
          );
          from = revision;
          continue;
        }
        const delay = Math.random() * Math.min(10_000, 250 * 2 ** attempt++);
        process.stderr.write(`watch interrupted (${messageOf(err)}); retrying in ${Math.round(delay)}ms\n`);
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}

/**
 * `REV put KEY by AUTHOR: MESSAGE` and below it what changed: a diff against the version seen
 * before, or the whole new content when the key is new to this watch.
 */
function describeChange(c: ConfigChange, known: Map<string, unknown>): string {
  const doc = c.document;
  const head = `${c.revision} ${c.type} ${c.key}${doc ? ` by ${doc.author}${doc.message ? `: ${doc.message}` : ''}` : ''}`;
  if (c.type === 'delete' || !doc) {
    known.delete(c.key);
    return head;
  }
  const indent = (text: string) =>
    text
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n');
  const before = known.has(c.key) ? known.get(c.key) : undefined;
  const seen = known.has(c.key);
  known.set(c.key, doc.value);
  if (!seen) return `${head}\n${indent(doc.content)}`;
  const changes = diffValues(before, doc.value);
  return `${head}\n${changes.length === 0 ? '    (same value)' : indent(formatDiff(changes))}`;
}

async function schemaCommand(api: ConfigApi, args: string[], v: Values): Promise<number> {
  const [action, prefix, file] = args;
  if (action === 'list') {
    const all = await api.listSchemas();
    if (v.json) out(JSON.stringify(all));
    else
      for (const s of all) {
        const what = [
          s.schema === undefined ? '' : 'JSON Schema',
          s.validator ? `${s.validator} validator` : '',
        ]
          .filter(Boolean)
          .join(' + ');
        out(`${s.prefix || '(all keys)'}  ${what}  by ${s.author} at ${s.time}`);
      }
    return 0;
  }
  if (action === 'set') {
    const validator = v.validator?.at(-1);
    const schema =
      validator !== undefined && file === undefined
        ? undefined
        : parseYaml(await readInput(need(file, 'schema file (or --validator gateway)')));
    await api.setSchema(prefix ?? '', schema, { author: author(v), ...(validator ? { validator } : {}) });
    out(
      `${[schema === undefined ? '' : 'schema', validator ? `${validator} validator` : ''].filter(Boolean).join(' and ')} bound to prefix "${prefix ?? ''}"`,
    );
    return 0;
  }
  if (action === 'delete') {
    if (!(await api.deleteSchema(prefix ?? ''))) {
      out(`no schema is bound to "${prefix ?? ''}"`);
      return 1;
    }
    out(`schema for "${prefix}" removed`);
    return 0;
  }
  throw usageError('schema takes set PREFIX FILE, list, or delete PREFIX');
}

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values: v, positionals: p } = parse(rest);
  if (sub === 'serve') return serve(v);
  const known = ['get', 'set', 'delete', 'list', 'watch', 'history', 'rollback', 'diff', 'schema'];
  if (!sub || !known.includes(sub)) {
    throw usageError(
      sub
        ? `unknown subcommand "${sub}"${didYouMean(sub, ['serve', ...known])}`
        : `name a subcommand: serve, ${known.join(', ')}`,
    );
  }
  const api = await target(v, ['get', 'list', 'watch', 'history', 'diff'].includes(sub));
  try {
    switch (sub) {
      case 'get': {
        const key = need(p[0], 'key');
        const doc = await api.get(key, v.label);
        if (!doc) {
          const label = v.label ?? DEFAULT_LABEL;
          throw new TrellisError(
            'TRELLIS_E_CONFIG_NOT_FOUND',
            `${key}@${label} does not exist: see what there is with \`trellis config list${label === DEFAULT_LABEL ? '' : ` --label ${label}`}\``,
          );
        }
        if (v.json) out(JSON.stringify(doc, null, 2));
        else process.stdout.write(doc.content.endsWith('\n') ? doc.content : `${doc.content}\n`);
        return 0;
      }
      case 'set': {
        const key = need(p[0], 'key');
        const content = await readInput(p[1]);
        const expected = v.create ? 0 : revisionArg(v['if-match'], '--if-match');
        const doc = await api.set(key, content, {
          label: v.label,
          format: formatArg(v.format),
          expectedRevision: expected,
          author: author(v),
          message: v.message,
        });
        out(`${doc.key}@${doc.label} is now at revision ${doc.revision}`);
        return 0;
      }
      case 'delete': {
        const key = need(p[0], 'key');
        const gone = await api.delete(key, {
          label: v.label,
          expectedRevision: revisionArg(v['if-match'], '--if-match'),
          author: author(v),
          message: v.message,
        });
        out(gone ? `${key} deleted` : `${key} did not exist`);
        return gone ? 0 : 1;
      }
      case 'list': {
        const { documents, revision } = await api.list(p[0] ?? '', v.label);
        if (v.json)
          out(JSON.stringify({ revision, documents: documents.map(({ value: _v, ...meta }) => meta) }));
        else
          for (const d of documents) out(`${d.key}\trev ${d.revision}\t${d.format}\t${d.author}\t${d.time}`);
        return 0;
      }
      case 'watch':
        return await watch(api, p[0] ?? '', v);
      case 'history': {
        const entries = await api.history(need(p[0], 'key'), v.label);
        if (v.json) out(JSON.stringify(entries));
        else {
          for (const e of entries) {
            out(`${e.revision}\t${e.time}\t${e.author}\t${e.deleted ? '[deleted] ' : ''}${e.message}`);
          }
        }
        return 0;
      }
      case 'rollback': {
        const key = need(p[0], 'key');
        const rev = revisionArg(need(p[1], 'revision to roll back to'), 'REV')!;
        const doc = await api.rollback(key, rev, { label: v.label, author: author(v), message: v.message });
        out(`${doc.key}@${doc.label} rolled back to revision ${rev}: now at revision ${doc.revision}`);
        return 0;
      }
      case 'diff': {
        const key = need(p[0], 'key');
        const content = await readInput(p[1]);
        const next = parseContent(content, formatArg(v.format) ?? detectFormat(content));
        const current = await api.get(key, v.label);
        const changes = diffValues(current?.value, next);
        out(
          changes.length === 0
            ? `no changes to ${key}`
            : `${key}@${v.label ?? DEFAULT_LABEL} ${current ? `(revision ${current.revision})` : '(new)'}\n${formatDiff(changes)}`,
        );
        return 0;
      }
      case 'schema':
        return await schemaCommand(api, p, v);
    }
    return 2;
  } finally {
    await api.close().catch(() => undefined);
  }
}

export const configCommand: Command = {
  name: 'config',
  summary: 'external configuration store: serve, get, set, watch, history, rollback, diff',
  usage,
  run,
};
