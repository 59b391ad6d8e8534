import type { Etcd3, IOptions } from 'etcd3';
import { TrellisError } from '../core/errors.js';
import { redactUrl, unavailable } from './connection.js';

/** An etcd://host:port[,host:port…] URL turned into etcd3 options plus Trellis's own query options. */
export function parseEtcdUrl(url: string): { options: IOptions; params: URLSearchParams } {
  const m = /^(etcds?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/?(?:\?(.*))?$/i.exec(url);
  if (!m) {
    throw new TrellisError(
      'TRELLIS_E_STORE_URL_INVALID',
      `${JSON.stringify(redactUrl(url))} is not an etcd URL: write etcd://host:2379 (several hosts: etcd://h1:2379,h2:2379)`,
    );
  }
  const [, scheme, user, password, hostList, query] = m;
  const proto = scheme!.toLowerCase() === 'etcds' ? 'https' : 'http';
  const hosts = hostList!.split(',').map((h) => `${proto}://${h.includes(':') ? h : `${h}:2379`}`);
  const options: IOptions = {
    hosts,
    dialTimeout: 3000,
    ...(user
      ? { auth: { username: decodeURIComponent(user), password: decodeURIComponent(password ?? '') } }
      : {}),
  };
  return { options, params: new URLSearchParams(query ?? '') };
}

/** True for etcd3/gRPC errors about reaching the cluster, not about the request. */
export function isEtcdConnectionError(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return (
    /GRPCConnectFailed|GRPCUnavailable|GRPCDeadlineExceeded|BrokenCircuit|EtcdAuthenticationFailed|EtcdInvalidAuthToken|GRPCProtocol|GRPCCancelled|ClientClosed/i.test(
      `${e?.name ?? ''} ${e?.constructor?.name ?? ''}`,
    ) ||
    /UNAVAILABLE|No connection established|Deadline exceeded|authentication failed|ECONNREFUSED|Call cancelled/i.test(
      e?.message ?? '',
    )
  );
}

/** Maps a connection failure to TRELLIS_E_STORE_UNAVAILABLE; any other error is returned as is. */
export function etcdError(url: string, err: unknown): unknown {
  if (err instanceof TrellisError) return err;
  return isEtcdConnectionError(err) ? unavailable('etcd', url, plain(err)) : err;
}

/** gRPC wraps a refused connection in a long message; keep the part a user can act on. */
function plain(err: unknown): unknown {
  const msg = (err as Error)?.message ?? '';
  const refused = /ECONNREFUSED ([\w.:[\]-]+?)\.?(?:\s|$)/.exec(msg);
  if (!refused) {
    if (/No connection established/.test(msg))
      return new Error('cannot connect (no answer from any host)', { cause: err });
    return new Error(msg.replace(/^\d+ [A-Z_]+: (etcdserver: )?/, ''), { cause: err });
  }
  const [address, port] = refused[1]!.split(/:(?=\d+$)/);
  return Object.assign(new Error(msg, { cause: err }), { code: 'ECONNREFUSED', address, port: Number(port) });
}

/**
 * Connects an etcd3 client for a store and checks the cluster answers, so a wrong URL fails at
 * open with a clear message. The driver (and gRPC) loads here, lazily.
 */
export async function openEtcd(url: string): Promise<Etcd3> {
  const { options } = parseEtcdUrl(url);
  const { Etcd3: Client } = await import('etcd3');
  const client = new Client(options);
  try {
    await client.maintenance.status({ deadline: Date.now() + 5000 });
  } catch (err) {
    client.close();
    // Anything that fails here (refused, auth, TLS) is about reaching the cluster.
    throw unavailable('etcd', url, plain(err));
  }
  return client;
}

/** The smallest key greater than every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  // An empty prefix (or all 0xff): "\0" means "to the end of the keyspace".
  return Buffer.from([0]);
}
