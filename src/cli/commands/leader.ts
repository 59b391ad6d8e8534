import { createLogger } from '../../core/logger.js';
import { parseDuration } from '../../core/units.js';
import { superviseWhileLeading } from '../../leader/supervise.js';
import { openLeaseStore } from '../../stores/lease/index.js';
import type { Command } from '../command.js';
import { parseCommandArgs, usageError } from '../usage.js';

const usage = `usage:
  trellis leader run --group G --store URL [options] -- <command> [args…]
  trellis leader status --group G --store URL [--json]

run: campaigns for the lease of group G and runs <command> only while leading. The command
gets the term's fencing token in TRELLIS_FENCING_TOKEN (and TRELLIS_LEADER_GROUP,
TRELLIS_LEADER_IDENTITY). The moment leadership is lost or in doubt the command gets SIGTERM,
then SIGKILL after --grace; then the candidate campaigns again. SIGTERM/SIGINT stop the command
and release the lease so another candidate takes over at once.

options:
  --group G             election name (required)
  --store URL           lease store: sqlite:PATH, postgres://…, redis://…, etcd://host:port
                        (default: $TRELLIS_LEADER_STORE)
  --identity ID         this candidate's name (default host-pid-random)
  --lease 15s           leaseDuration: how long a silent leader keeps the lease
  --renew-deadline 10s  how long a leader retries renewing before it stops acting
  --retry 2s            retryPeriod: how often to try to acquire / renew
  --grace 5s            time between SIGTERM and SIGKILL for the command
  --json                (status) print JSON`;

const options = {
  group: { type: 'string' },
  store: { type: 'string' },
  identity: { type: 'string' },
  lease: { type: 'string' },
  'renew-deadline': { type: 'string' },
  retry: { type: 'string' },
  grace: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function parse(argv: string[]) {
  return parseCommandArgs(argv, options);
}

const ms = (v: string | undefined) => (v === undefined ? undefined : parseDuration(v));

async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'run' && sub !== 'status') {
    throw usageError(
      sub ? `unknown subcommand "${sub}": use run or status` : 'name a subcommand: run or status',
    );
  }
  const { values, positionals } = parse(rest);
  const group = values.group;
  const url = values.store ?? process.env.TRELLIS_LEADER_STORE;
  if (!group) throw usageError('--group is required');
  if (!url) throw usageError('--store is required (or set TRELLIS_LEADER_STORE)');
  const store = await openLeaseStore(url);
  if (sub === 'status') {
    try {
      const lease = await store.read(group);
      if (values.json) {
        process.stdout.write(`${JSON.stringify({ group, leader: lease ?? null })}\n`);
      } else if (!lease) {
        process.stdout.write(`group ${group}: no leader\n`);
      } else {
        const left = Math.max(0, lease.expiresAt - Date.now());
        process.stdout.write(
          `group ${group}\nleader:  ${lease.holder}\ntoken:   ${lease.token}\nexpires: ${new Date(lease.expiresAt).toISOString()} (in ${left}ms)\n`,
        );
      }
      return 0;
    } finally {
      await store.close();
    }
  }
  if (positionals.length === 0) throw usageError('give the command to run after --');
  const logger = createLogger({ name: 'trellis-leader' });
  const elector = superviseWhileLeading({
    store,
    group,
    identity: values.identity,
    leaseDuration: ms(values.lease),
    renewDeadline: ms(values['renew-deadline']),
    retryPeriod: ms(values.retry),
    graceMs: ms(values.grace),
    command: positionals,
    logger,
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    logger.info({ signal }, 'stopping: ending the command and releasing the lease');
    void elector.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    await elector.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await store.close().catch(() => undefined);
  }
  return 0;
}

export const leaderCommand: Command = {
  name: 'leader',
  summary: 'run a command only while leading a group (leader election with fencing tokens)',
  usage,
  run,
};
