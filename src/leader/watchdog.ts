/**
 * A small Node program that `trellis leader run` starts between itself and the command, so the
 * command cannot outlive a supervisor that is SIGKILLed (Node has no prctl(PR_SET_PDEATHSIG)),
 * and stops once the supervisor has been frozen (SIGSTOP, a stalled VM) for longer than the
 * renew deadline: past that the term is in doubt, and a successor may already be leading.
 *
 * argv: graceMs renewDeadlineMs command [args…]. It runs the command in its own process group
 * (the watchdog's), ignores SIGTERM itself (the group signal reaches the command directly) and
 * ends as the command ended: with its exit code, or killed by the same signal (re-raised on
 * itself, so the supervisor sees `signal: 'SIGKILL'`, not a made-up code). A command that cannot
 * start exits 127 (not found) or 126 (not executable), as a shell does. Inline source, run with `node -e`, so it works the same from
 * the built package and from the TypeScript sources.
 */
/** Exit status of a command that was not found (as a shell reports it). */
export const NOT_FOUND = 127;
/** Exit status of a command that was found but could not be executed. */
export const CANNOT_EXECUTE = 126;

export const WATCHDOG_SOURCE = `
const { spawn } = require('node:child_process');
const { readFileSync } = require('node:fs');
const [graceMs, deadlineMs, file, ...args] = process.argv.slice(1);
const parent = process.ppid;
const child = spawn(file, args, { stdio: 'inherit' });
let stopping = false;
const stop = (why) => {
  if (stopping) return;
  stopping = true;
  process.stderr.write('trellis leader watchdog: ' + why + ': stopping the command\\n');
  // The whole group: the command and everything it started (the watchdog ignores SIGTERM).
  try { process.kill(-process.pid, 'SIGTERM'); } catch { try { child.kill('SIGTERM'); } catch {} }
  setTimeout(() => { try { process.kill(-process.pid, 'SIGKILL'); } catch { try { child.kill('SIGKILL'); } catch {} } }, Number(graceMs)).unref();
};
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
const frozen = () => {
  try {
    const stat = readFileSync('/proc/' + parent + '/stat', 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T';
  } catch { return false; }
};
let frozenSince;
const timer = setInterval(() => {
  if (process.ppid !== parent) return stop('the supervisor died');
  if (frozen()) {
    frozenSince ??= Date.now();
    if (Date.now() - frozenSince > Number(deadlineMs)) stop('the supervisor is frozen past the renew deadline');
  } else frozenSince = undefined;
}, 100);
child.on('error', (err) => {
  process.stderr.write('trellis leader: cannot start ' + JSON.stringify(file) + ': ' + err.message + '\\n');
  process.exit(err.code === 'ENOENT' ? 127 : 126);
});
child.on('exit', (code, signal) => {
  clearInterval(timer);
  if (signal) {
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
    try { process.kill(process.pid, signal); } catch {}
    // A signal whose default is not to end a process: fall back to the shell's 128 + n.
    setTimeout(() => process.exit(128 + (require('node:os').constants.signals[signal] || 0)), 1000);
    return;
  }
  process.exit(code ?? 1);
});
`;
