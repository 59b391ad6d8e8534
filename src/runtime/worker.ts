import { localPanels } from '../admin/extension.js';
import { drainOnSignals } from '../core/lifecycle.js';
import { BUFFERED } from '../core/log-destination.js';
import { createLogger, flushLogger, logMetrics } from '../core/logger.js';
import { createMetricsRegistry } from '../core/metrics.js';
import { type Gateway, type PreparedConfig, startGateway } from '../gateway/gateway.js';
import { memoryProvider } from './providers/memory.js';
import type { FromWorker, PrepareReply, StartMessage, ToWorker, WorkerRequest } from './worker-messages.js';

/**
 * The entry of one gateway worker process (forked by workers.ts through node:cluster). It runs
 * an ordinary gateway without its own admin listener, file watch or SIGHUP: the primary owns
 * those and drives reloads through `prepare` / `commit` messages.
 */

const send = (message: FromWorker) => {
  if (process.connected) process.send!(message);
};

let gateway: Gateway | undefined;
let prepared: PreparedConfig | undefined;
let stopping: Promise<void> | undefined;
// The primary passes the log level in TRELLIS_LOG_LEVEL.
const logger = createLogger({ name: 'gateway', destination: BUFFERED });

/** Drains, flushes the logs and exits; the same path for a stop message, a signal or a lost primary. */
function stop(deadlineMs: number, code = 0): Promise<void> {
  stopping ??= (async () => {
    await prepared?.abort().catch(() => undefined);
    await gateway?.stop(deadlineMs).catch((err: unknown) => logger.error({ err }, 'drain failed'));
    await flushLogger(logger, 2_000);
    process.exit(code);
  })();
  return stopping;
}

async function start(message: StartMessage): Promise<void> {
  const registry = createMetricsRegistry({ defaults: true });
  logMetrics(registry, logger);
  try {
    gateway = await startGateway({
      // The primary's provider reads and watches; a worker is handed each text.
      provider: memoryProvider(message.text, { label: message.label, baseDir: message.baseDir }),
      version: message.version,
      admin: false,
      watch: false,
      logger,
      registry,
    });
  } catch (err) {
    send({
      t: 'failed',
      error: err instanceof Error ? err.message : String(err),
      ...((err as { code?: string }).code ? { code: (err as { code: string }).code } : {}),
    });
    await flushLogger(logger, 2_000);
    process.exit(1);
  }
  const gw = gateway;
  const answer = async (req: WorkerRequest): Promise<unknown> => {
    switch (req.t) {
      case 'prepare': {
        const p = await gw.prepareConfig(req.text, req.label);
        if (p.ok) prepared = p;
        const reply: PrepareReply = p.ok
          ? { ok: true, ...(p.version === undefined ? {} : { version: p.version }) }
          : { ok: false, ...(p.result ? { result: p.result } : {}) };
        return reply;
      }
      case 'commit': {
        const p = prepared;
        prepared = undefined;
        if (!p) throw new Error('nothing prepared to commit');
        return p.commit();
      }
      case 'abort': {
        const p = prepared;
        prepared = undefined;
        await p?.abort();
        return null;
      }
      case 'metrics':
        return registry.getMetricsAsJSON();
      case 'view':
        return gw.adminViews()[req.what]();
      case 'panels':
        return localPanels(gw.adminViews().panels?.() ?? [], `worker pid ${process.pid}`);
    }
  };
  process.on('message', (message: ToWorker) => {
    if (message.t === 'stop') {
      void stop(message.deadlineMs);
      return;
    }
    if (message.t === 'start') return;
    answer(message).then(
      (value) => send({ t: 'reply', id: message.id, ok: true, value }),
      (err: unknown) =>
        send({
          t: 'reply',
          id: message.id,
          ok: false,
          error: err instanceof Error ? err.message : String(err),
        }),
    );
  });
  send({ t: 'started', ports: { ...gw.ports }, version: gw.version });
}

// The primary owns SIGHUP (reload); a worker ignores it instead of dying from its default action.
process.on('SIGHUP', () => {});
// Ctrl-C reaches the whole process group: every worker drains by itself, like the primary.
drainOnSignals([{ stop: () => stop(gateway?.drainTimeout ?? 10_000) }], { exit: () => {} });
// The primary is gone (killed): nobody will route to this worker or stop it; drain and go.
process.on('disconnect', () => void stop(gateway?.drainTimeout ?? 10_000));
process.once('message', (message: ToWorker) => {
  if (message.t === 'start') void start(message);
});
// Messages sent before this module ran would be lost: the primary waits for this one.
send({ t: 'hello' });
