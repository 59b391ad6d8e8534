/** Fault helpers for the integration tier: cut a store's connections while its server stays up. */

/** Terminates every PostgreSQL connection whose application_name is `app` (pg_terminate_backend). */
export async function terminateBackends(adminUrl: string, app: string): Promise<number> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const { rowCount } = await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [app],
    );
    return rowCount ?? 0;
  } finally {
    await c.end();
  }
}

/** Kills every Redis client connection named `name` (CLIENT KILL ID …), as a server restart would. */
export async function killRedisClients(url: string, name: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const admin = new Redis(url, { lazyConnect: true });
  await admin.connect();
  let killed = 0;
  try {
    const list = (await admin.call('CLIENT', 'LIST')) as string;
    for (const line of list.split('\n')) {
      const id = /(?:^| )id=(\d+)/.exec(line)?.[1];
      if (id && line.includes(` name=${name} `))
        killed += Number(await admin.call('CLIENT', 'KILL', 'ID', id));
    }
    return killed;
  } finally {
    admin.disconnect();
  }
}
