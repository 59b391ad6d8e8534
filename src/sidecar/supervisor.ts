import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { TrellisError } from '../core/errors.js';
import { portListens, probeApp } from './health.js';
import type { AppConfig } from './schema.js';

/** Where the app is in its life; inbound traffic flows only while `healthy`. */
export type AppState = 'starting' | 'healthy' | 'unhealthy' | 'restarting' | 'stopping' | 'stopped';

/** How the app ended for good (the sidecar exits with `code`). */
export interface AppExit {
  code: number;
  signal: NodeJS.Signals | null;
  /** `job`: exited 0 (job mode); `stopped`: by SIGTERM; `crashed`: no more restarts. */
  reason: 'job' | 'stopped' | 'crashed' | 'never-healthy';
}

/** What the supervisor needs besides the `app:` block. */
export interface SupervisorOptions {
  command: readonly string[];
  app: AppConfig;
  /** Environment added for the app (TRELLIS_SIDECAR_URL, TRELLIS_SIDECAR_TOKEN, PORT). */
  env: Record<string, string>;
  logger: Logger;
}

/**
 * Runs the app as a child process and keeps it running by policy: waits until it is healthy
 * (port listening, health path 2xx), watches its health, restarts a crashed app with
 * exponential backoff until a crash loop (more than `maxRestarts` inside `crashLoopWindow`),
 * and stops it with SIGTERM then SIGKILL after `stopTimeout`.
 *
 * The app runs in its own process group: a Ctrl-C or a SIGTERM to the sidecar's group does not
 * reach it directly, so the sidecar decides the order (drain inbound first, then stop the app).
 * Emits `state` (AppState) on every change.
 */
export class AppSupervisor extends EventEmitter<{ state: [AppState] }> {
  readonly name: string;
  #state: AppState = 'starting';
  #child: ChildProcess | undefined;
  #restarts = 0;
  #restartTimes: number[] = [];
  #consecutiveFailures = 0;
  #stopping = false;
  #firstLaunch = true;
  #healthTimer: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #childExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  #resolveDone!: (exit: AppExit) => void;
  /** Resolves once the app ended for good (job done, stopped, crash loop, never healthy). */
  readonly done: Promise<AppExit>;

  constructor(private readonly options: SupervisorOptions) {
    super();
    this.name = options.app.name ?? basename(options.command[0] ?? 'app');
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
  }

  get state(): AppState {
    return this.#state;
  }

  /** How many times the app was restarted after a crash. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The app's process id, while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /**
   * Starts the app and resolves once it is healthy. Rejects with TRELLIS_E_SIDECAR_APP_UNHEALTHY
   * when it is not healthy within `startTimeout` (the app is then stopped) or exits first with a
   * failure; resolves too when the app finishes its job (exit 0) before it ever listened.
   */
  async start(): Promise<void> {
    // A port already taken would pass every health probe with someone else's process.
    if (await portListens(this.options.app.port)) {
      this.#stopping = true;
      this.#finish({ code: 1, signal: null, reason: 'never-healthy' });
      throw new TrellisError(
        'TRELLIS_E_SIDECAR_APP_PORT_TAKEN',
        `app.port ${this.options.app.port} is already in use by another process: stop it or choose another port`,
      );
    }
    const outcome = await this.#launch();
    this.#firstLaunch = false;
    if (outcome === 'healthy') return;
    // The first start decides alone: no restart of an app that never came up.
    this.#stopping = true;
    const child = this.#child!;
    const exitedByItself = child.exitCode !== null || child.signalCode !== null;
    signalGroup(child, 'SIGKILL');
    const { code, signal } = await this.#childExit!;
    if (outcome === 'exited-ok') {
      this.#finish({ code: 0, signal: null, reason: 'job' });
      return;
    }
    const exitCode = exitCodeOf(code, signal) || 1;
    this.#finish({ code: exitCode, signal, reason: 'never-healthy' });
    // The app's own status when it exited by itself (a failed job), so the sidecar exits with it.
    throw new TrellisError('TRELLIS_E_SIDECAR_APP_UNHEALTHY', outcome, {
      details: { exitCode: exitedByItself ? exitCode : 1 },
    });
  }

  /** SIGTERM to the app (its process group), SIGKILL after `stopTimeout`; resolves with how it ended. */
  async stop(): Promise<AppExit> {
    if (!this.#stopping) {
      this.#stopping = true;
      clearTimeout(this.#restartTimer);
      clearInterval(this.#healthTimer);
      this.#setState('stopping');
      const child = this.#child;
      if (child !== undefined && this.#childExit !== undefined) {
        signalGroup(child, 'SIGTERM');
        const timer = setTimeout(() => {
          this.options.logger.warn(
            { app: this.name, stopTimeout: this.options.app.stopTimeout },
            'the app did not exit in time after SIGTERM: SIGKILL',
          );
          signalGroup(child, 'SIGKILL');
        }, this.options.app.stopTimeout);
        const { code, signal } = await this.#childExit;
        clearTimeout(timer);
        this.#finish({ code: exitCodeOf(code, signal), signal, reason: 'stopped' });
      } else {
        this.#finish({ code: 0, signal: null, reason: 'stopped' });
      }
    }
    return this.done;
  }

  /** Sends SIGKILL to the app's group at once (the sidecar itself is going away). */
  killNow(): void {
    if (this.#child !== undefined && this.#child.exitCode === null) signalGroup(this.#child, 'SIGKILL');
  }

  #setState(state: AppState): void {
    if (this.#state === state || this.#state === 'stopped') return;
    this.#state = state;
    this.options.logger.info({ app: this.name, state }, `app ${state}`);
    this.emit('state', state);
  }

  #finish(exit: AppExit): void {
    clearInterval(this.#healthTimer);
    clearTimeout(this.#restartTimer);
    this.#setState('stopped');
    this.#resolveDone(exit);
  }

  /** Spawns once and waits for healthy; what happened, or why it failed (a message). */
  async #launch(): Promise<'healthy' | 'exited-ok' | string> {
    const { app, command, logger } = this.options;
    const child = spawn(command[0]!, command.slice(1), {
      env: { ...process.env, ...app.env, ...this.options.env },
      stdio: ['inherit', app.logs === 'json' ? 'pipe' : 'inherit', app.logs === 'json' ? 'pipe' : 'inherit'],
      detached: true,
    });
    this.#child = child;
    if (app.logs === 'json') {
      this.#jsonLines(child.stdout!, 'stdout');
      this.#jsonLines(child.stderr!, 'stderr');
    }
    let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    let spawnError: Error | undefined;
    this.#childExit = new Promise((resolve) => {
      child.once('error', (err) => {
        spawnError = err;
        exited = { code: 127, signal: null };
        resolve(exited);
      });
      child.once('exit', (code, signal) => {
        exited = { code, signal };
        resolve(exited);
      });
    });
    // The app has its own process group: if the sidecar itself exits, take the app down with it.
    const orphanGuard = () => signalGroup(child, 'SIGKILL');
    process.once('exit', orphanGuard);
    void this.#childExit.then((e) => {
      process.off('exit', orphanGuard);
      reapGroup(child);
      this.#onExit(child, e);
    });
    logger.info({ app: this.name, pid: child.pid, command }, 'app started');

    const until = Date.now() + app.startTimeout;
    for (;;) {
      if (exited !== undefined) {
        if (spawnError !== undefined)
          return `cannot start the app ${JSON.stringify(command[0])}: ${spawnError.message}`;
        if (exited.code === 0) return 'exited-ok';
        return `the app exited before it became healthy (${describeExit(exited.code, exited.signal)})`;
      }
      if (this.#stopping) return 'the sidecar is stopping';
      if (await probeApp(app.port, app.healthPath)) break;
      if (Date.now() > until) {
        const what =
          app.healthPath === undefined
            ? `port ${app.port} never listened`
            : `GET ${app.healthPath} on port ${app.port} never answered 2xx`;
        signalGroup(child, 'SIGKILL');
        return `the app did not become healthy within ${app.startTimeout} ms: ${what}`;
      }
      // Polling is the only signal a foreign process gives; 50 ms keeps start-up latency low.
      await new Promise((r) => setTimeout(r, 50));
    }
    this.#setState('healthy');
    this.#watchHealth(child);
    return 'healthy';
  }

  #watchHealth(child: ChildProcess): void {
    const { app } = this.options;
    let probing = false;
    this.#healthTimer = setInterval(() => {
      if (probing || this.#child !== child || this.#stopping) return;
      probing = true;
      void probeApp(app.port, app.healthPath).then((ok) => {
        probing = false;
        if (this.#child !== child || this.#stopping || child.exitCode !== null) return;
        if (ok) this.#consecutiveFailures = 0;
        this.#setState(ok ? 'healthy' : 'unhealthy');
      });
    }, app.healthInterval);
    this.#healthTimer.unref();
  }

  #onExit(child: ChildProcess, e: { code: number | null; signal: NodeJS.Signals | null }): void {
    if (this.#child !== child || this.#firstLaunch) return;
    clearInterval(this.#healthTimer);
    const code = exitCodeOf(e.code, e.signal);
    if (this.#stopping) return; // stop() reports it
    const { app, logger } = this.options;
    const wasHealthy = this.#state === 'healthy' || this.#state === 'unhealthy';
    const restart = app.restart === 'always' || (app.restart === 'on-failure' && code !== 0);
    if (!restart) {
      logger.info(
        { app: this.name, code, signal: e.signal },
        code === 0 ? 'the app finished (job mode)' : 'the app exited',
      );
      this.#finish({ code, signal: e.signal, reason: code === 0 ? 'job' : 'crashed' });
      return;
    }
    const now = Date.now();
    this.#restartTimes = this.#restartTimes.filter((t) => now - t < app.crashLoopWindow);
    if (this.#restartTimes.length >= app.maxRestarts) {
      logger.error(
        { app: this.name, code, restarts: this.#restartTimes.length, window: app.crashLoopWindow },
        `crash loop: the app exited ${this.#restartTimes.length + 1} times within ${app.crashLoopWindow} ms; giving up`,
      );
      this.#finish({ code: code === 0 ? 1 : code, signal: e.signal, reason: 'crashed' });
      return;
    }
    this.#restartTimes.push(now);
    if (wasHealthy) this.#consecutiveFailures = 0;
    const delay = Math.min(app.backoff.max, app.backoff.initial * 2 ** this.#consecutiveFailures);
    this.#consecutiveFailures++;
    this.#setState('restarting');
    logger.warn({ app: this.name, code, signal: e.signal, delayMs: delay }, 'the app exited: restarting');
    this.#restartTimer = setTimeout(() => {
      this.#restarts++;
      void this.#launch().then((outcome) => {
        if (outcome === 'healthy' || outcome === 'exited-ok' || this.#stopping) return;
        logger.error({ app: this.name }, outcome);
        // A restart that never became healthy was killed (or exited): its exit handler decides next.
      });
    }, delay);
  }

  #jsonLines(stream: NodeJS.ReadableStream, name: 'stdout' | 'stderr'): void {
    const out = name === 'stdout' ? process.stdout : process.stderr;
    createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => {
      out.write(`${JSON.stringify({ time: Date.now(), app: this.name, stream: name, msg: line })}\n`);
    });
  }
}

/** Signals the app's whole process group (a shell app's children too). */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // Already gone.
    }
  }
}

/** Kills what the app left behind in its group (a shell app's children) once the app itself exited. */
function reapGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // Nothing left.
  }
}

/** A shell's convention: a signal death is 128 + its number. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const numbers: Partial<Record<NodeJS.Signals, number>> = {
    SIGTERM: 15,
    SIGKILL: 9,
    SIGINT: 2,
    SIGHUP: 1,
    SIGSEGV: 11,
    SIGABRT: 6,
  };
  return 128 + (signal ? (numbers[signal] ?? 0) : 0);
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}
