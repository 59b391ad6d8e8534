import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { TrellisError } from '../core/errors.js';

/** A listener on a Unix socket: its absolute path and the file mode it gets once bound. */
export interface UnixSocketConfig {
  path: string;
  /** File mode of the socket (who may connect), like 0o660. */
  mode: number;
}

/**
 * Whether something accepts connections on the socket at `path`: a refused connection means a
 * stale file left by a process that died (it may be removed), an accepted one a live listener.
 */
function someoneListens(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/**
 * Binds `server` to the Unix socket of `socket`: a stale socket file (nothing listening) is
 * removed first; a live one, or a path that is not a socket, is refused with a clear error.
 * The socket gets `mode` once bound. Resolves with the address as the listeners report it (port 0).
 */
export async function bindUnixSocket(server: Server, socket: UnixSocketConfig): Promise<AddressInfo> {
  const { path } = socket;
  let existing: ReturnType<typeof lstatSync> | undefined;
  try {
    existing = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing !== undefined) {
    if (!existing.isSocket()) {
      throw new TrellisError(
        'TRELLIS_E_SOCKET_IN_USE',
        `${path} exists and is not a Unix socket: remove it or choose another path`,
      );
    }
    if (await someoneListens(path)) {
      throw new TrellisError(
        'TRELLIS_E_SOCKET_IN_USE',
        `a process is listening on the Unix socket ${path}: stop it or choose another path`,
      );
    }
    // A socket file nobody listens on: left by a process that did not stop cleanly.
    unlinkSync(path);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, socket.mode);
  return { address: path, family: 'unix', port: 0 };
}

/** Removes the socket file of a stopped listener (libuv usually has already). */
export function removeUnixSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // Gone already.
  }
}
