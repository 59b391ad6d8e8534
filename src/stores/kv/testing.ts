/** Fault helpers for the integration tier: cut a store's connections while its server stays up. */

/** Terminates every PostgreSQL connection whose application_name is `app` (pg_terminate_backend). */
export async function terminateBackends(adminUrl: string, app: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(
      'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
      [app],
    );
  } finally {
    await c.end();
  }
}
