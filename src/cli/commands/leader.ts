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
A command that fails gives the term up and restarts in the next term (a new fencing token), at
once on another candidate or here after exponential backoff (--backoff, doubling up to
--backoff-max); after --max-restarts failures in a row it is a crash loop: the lease is released
and run exits 4. Exit 0 is success: the term is kept and the command is not rerun until the
term ends (--restart always reruns it). A command that cannot start exits 127/126 at once.

status: prints the group's leader; exits 3 when the group has no leader.

exit codes: 0 ok (run: stopped by SIGTERM/SIGINT), 1 error, 2 usage, 3 (status) no leader,
4 (run) crash loop, 126/127 (run) the command cannot start, with --once: the command's status

options:
  --group G             election name (required)
  --store URL           lease store: sqlite:PATH, postgres://…, redis://…, etcd://host:port
                        (default: $TRELLIS_LEADER_STORE)
  --identity ID         this candidate's name (default host-pid-random)
  --lease 15s           leaseDuration: how long a silent leader keeps the lease
  --renew-deadline 10s  how long a leader retries renewing before it stops acting
  --retry 2s            retryPeriod: how often to try to acquire / renew
  --grace 5s            time between SIGTERM and SIGKILL for the command
  --restart on-failure  on-failure | always | never: when to restart a command that exits
  --once                run the command once per term (same as --restart never): exit 0 keeps
                        the term idle; a failure releases the lease and exits with its status
  --backoff 1s          first restart delay after a failure (doubles per failure in a row)
  --backoff-max 30s     longest restart delay; a run longer than this resets the count
  --max-restarts 5      failures in a row before giving up (crash loop, exit 4)
  --json                (status) print JSON`;

const options = {
  group: { type: 'string' },
  store: { type: 'string' },
  identity: { type: 'string' },
  lease: { type: 'string' },
  'renew-deadline': { type: 'string' },
  retry: { type: 'string' },
  grace: { type: 'string' },
  restart: { type: 'string' },
  once: { type: 'boolean' },
  backoff: { type: 'string' },
  'backoff-max': { type: 'string' },
  'max-restarts': { type: 'string' },
  json: { type: 'boolean' },
} as const;

function parse(argv: string[]) {
  return parseCommandArgs(argv, options);
}

/** `trellis leader status` exit code when the group has no leader. */
export const EXIT_NO_LEADER = 3;

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
  // status only reads: a mistyped sqlite path is refused, not created (TRELLIS_E_STORE_NOT_FOUND).
  const store = await openLeaseStore(url, { readOnly: sub === 'status' });
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
      // Scripts can tell "nobody leads" from "leads" without parsing the output.
      return lease ? 0 : EXIT_NO_LEADER;
    } finally {
      await store.close();
    }
  }
  if (positionals.length === 0) throw usageError('give the command to run after --');
  if (values.once && values.restart !== undefined && values.restart !== 'never') {
    throw usageError(`--once means --restart never: drop one of --once and --restart ${values.restart}`);
  }
  const restart = values.once ? 'never' : (values.restart ?? 'on-failure');
  if (restart !== 'on-failure' && restart !== 'always' && restart !== 'never') {
    throw usageError(`--restart must be on-failure, always or never, got ${restart}`);
  }
  const maxRestarts = values['max-restarts'] === undefined ? undefined : Number(values['max-restarts']);
  if (maxRestarts !== undefined && !(Number.isSafeInteger(maxRestarts) && maxRestarts >= 0)) {
    throw usageError(`--max-restarts must be a whole number >= 0, got ${values['max-restarts']}`);
  }
  const logger = createLogger({ name: 'trellis-leader' });
  const supervised = superviseWhileLeading({
    store,
    group,
    identity: values.identity,
    leaseDuration: ms(values.lease),
    renewDeadline: ms(values['renew-deadline']),
    retryPeriod: ms(values.retry),
    graceMs: ms(values.grace),
    restart,
    backoffMs: ms(values.backoff),
    maxBackoffMs: ms(values['backoff-max']),
    maxRestarts,
    command: positionals,
    logger,
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) process.exit(1);
    logger.info({ signal }, 'stopping: ending the command and releasing the lease');
    void supervised.stop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    return await supervised.run();
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await store.close().catch(() => undefined);
  }
}

export const leaderCommand: Command = {
  name: 'leader',
  summary: 'run a command only while leading a group (leader election with fencing tokens)',
  usage,
  run,
};
