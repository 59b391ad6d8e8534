import { resolve } from 'node:path';
import { drainOnSignals } from '../../core/lifecycle.js';
import { createLogger } from '../../core/logger.js';
import { startGateway } from '../../gateway/gateway.js';
import { compressFolder } from '../../static/compress.js';
import { human, progressReporter } from '../../static/publish/progress.js';
import { publish } from '../../static/publish/publish.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';
import { parseHostPort } from './gateway.js';

const usage = `usage: trellis static serve DIR [--port P] [--host H] [--spa] [--admin host:port] [--no-admin]
       trellis static compress DIR
       trellis static publish DIR --to s3://bucket/prefix|FOLDER [--dry-run] [--keep K]
                              [--endpoint URL] [--region R] [--no-compress]

serve      serve DIR (a folder, a published folder, or s3://bucket/prefix) with the static:
           handler: content-hash ETags, 304s, ranges, precompressed .br/.gz, cache rules;
           the admin listener (/healthz, /metrics) on 127.0.0.1:9901 unless --no-admin
compress   write DIR's .br and .gz variants beside each compressible file (zstd needs Node 22.15+)
publish    upload a build: hashed assets first (verified), then HTML and manifests, then switch
           the live release in one write; older releases beyond --keep (default 3) are pruned
           after the switch. Credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or a
           profile); endpoint and region from the flags or AWS_ENDPOINT_URL / AWS_REGION.

options:
  --port P              serve: port (default 8080)
  --host H              serve: address (default 127.0.0.1)
  --spa                 serve: answer /index.html for unknown paths without an extension
  --admin HOST:PORT     serve: admin listener address
  --no-admin            serve: no admin listener
  --log-level LEVEL     serve: trace, debug, info, warn, error
  --no-access-log       serve: no access-log line per request
  --to URL              publish: s3://bucket/prefix or a folder
  --dry-run             publish: print the plan, write nothing
  --keep K              publish: releases kept (default 3)
  --endpoint URL        publish/serve s3: an S3-compatible endpoint (path-style addressing)
  --region R            publish/serve s3: region (default us-east-1)
  --no-compress         publish: upload no .br/.gz variants`;

const options = {
  port: { type: 'string' },
  host: { type: 'string' },
  spa: { type: 'boolean' },
  admin: { type: 'string' },
  'no-admin': { type: 'boolean' },
  'log-level': { type: 'string' },
  'no-access-log': { type: 'boolean' },
  to: { type: 'string' },
  'dry-run': { type: 'boolean' },
  keep: { type: 'string' },
  endpoint: { type: 'string' },
  region: { type: 'string' },
  'no-compress': { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof options>>['values'];

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, options);
  const [sub, dir, ...extra] = positionals;
  if (extra.length > 0) throw usageError(`unexpected argument "${extra[0]}"`);
  if (sub !== 'serve' && sub !== 'compress' && sub !== 'publish') {
    throw usageError(
      sub
        ? `unknown subcommand "${sub}": use serve, compress or publish`
        : 'name a subcommand: serve, compress or publish',
    );
  }
  if (!dir) throw usageError(`name the folder: trellis static ${sub} DIR`);
  if (sub === 'serve') return serve(dir, values);
  if (sub === 'compress') {
    const r = await compressFolder(resolve(dir), (rel, n) => {
      if (n > 0) process.stdout.write(`compressed ${rel} (${n} variant${n === 1 ? '' : 's'})\n`);
    });
    process.stdout.write(
      `${r.files} files compressed, ${r.written} variants written (${human(r.bytesIn)} -> ${human(r.bytesOut)} across all variants)\n`,
    );
    return 0;
  }
  if (!values.to) throw usageError('name the target with --to s3://bucket/prefix or --to FOLDER');
  const keep = values.keep === undefined ? 3 : Number(values.keep);
  if (!Number.isInteger(keep) || keep < 1)
    throw usageError(`--keep ${values.keep}: a whole number of releases, 1 or more`);
  const result = await publish({
    dir: resolve(dir),
    to: values.to.startsWith('s3://') ? values.to : resolve(values.to),
    keep,
    dryRun: values['dry-run'] === true,
    compress: values['no-compress'] !== true,
    s3: s3Settings(values),
    onEvent: progressReporter(process.stdout),
  });
  if (result.dryRun) {
    process.stdout.write(
      `plan for release ${result.release} (live now: ${result.previous ?? 'none'}), nothing written:\n`,
    );
    for (const step of result.plan) {
      const note = step.present ? ' (already there)' : step.variant ? ' (if smaller)' : '';
      process.stdout.write(
        `  ${step.phase.padEnd(8)} ${step.key}${step.bytes ? ` ${human(step.bytes)}` : ''}${note}\n`,
      );
    }
  }
  return 0;
}

function s3Settings(values: Values) {
  return {
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
    ...(values.region ? { region: values.region } : {}),
  };
}

async function serve(dir: string, values: Values): Promise<number> {
  const port = values.port === undefined ? 8080 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw usageError(`--port ${values.port}: a port number`);
  const root = dir.startsWith('s3://') ? dir : resolve(dir);
  const s3 = s3Settings(values);
  // The one-line server is a gateway with one route: the same handler, admin API and drain.
  const text = JSON.stringify({
    listen: { host: values.host ?? '127.0.0.1', port },
    accessLog: values['no-access-log'] !== true,
    routes: [
      {
        name: 'static',
        match: { path: '/*' },
        static: { root, spa: values.spa === true, ...(Object.keys(s3).length ? { s3 } : {}) },
      },
    ],
  });
  const logger = createLogger({
    name: 'static',
    ...(values['log-level'] ? { level: values['log-level'] } : {}),
  });
  const gateway = await startGateway({
    text,
    label: `trellis static serve ${dir}`,
    logger,
    ...(values['no-admin']
      ? { admin: false as const }
      : values.admin
        ? { admin: parseHostPort(values.admin) }
        : {}),
  });
  logger.info({ root, ports: gateway.ports }, 'static server started');
  await new Promise<void>((resolveExit) => {
    drainOnSignals([gateway], {
      logger,
      drainMs: gateway.drainTimeout,
      exit: (code) => {
        process.exitCode = code;
        logger.flush?.();
        resolveExit();
      },
    });
  });
  return Number(process.exitCode ?? 0);
}

export const staticCommand: Command = {
  name: 'static',
  summary: 'serve, precompress and publish static sites',
  usage,
  run,
};
