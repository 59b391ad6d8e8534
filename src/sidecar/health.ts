import { request } from 'node:http';
import { connect } from 'node:net';

/**
 * Whether the app is ready: its port accepts a connection and, when a health path is
 * configured, that path answers 2xx. Each probe has its own deadline so a hung app reads as
 * unhealthy instead of stalling the supervisor.
 */
export async function probeApp(
  port: number,
  healthPath: string | undefined,
  timeoutMs = 1_000,
): Promise<boolean> {
  if (healthPath === undefined) return portListens(port, timeoutMs);
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path: healthPath, method: 'GET', agent: false, timeout: timeoutMs },
      (res) => {
        res.resume();
        resolve(res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300);
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portListens(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
