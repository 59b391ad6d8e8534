import { randomUUID } from 'node:crypto';
import { describe } from 'vitest';
import { serviceUrl } from '../../testing/services.js';
import { terminateBackends } from '../kv/testing.js';
import { leaseConformance } from './conformance.js';
import { PostgresLeaseStore } from './postgres.js';

const base = await serviceUrl('postgres');
const app = `trellis-lease-test-${randomUUID().slice(0, 8)}`;
const url = base && `${base}${base.includes('?') ? '&' : '?'}application_name=${app}`;

describe.skipIf(!base)('postgres', () => {
  leaseConformance('postgres', () => PostgresLeaseStore.open(url!), {
    shortTtlMs: 200,
    reopen: () => PostgresLeaseStore.open(url!),
    disrupt: () => terminateBackends(base!, app),
  });
});
