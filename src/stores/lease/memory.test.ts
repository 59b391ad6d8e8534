import { leaseConformance } from './conformance.js';
import { MemoryLeaseStore } from './memory.js';

leaseConformance('memory', async () => new MemoryLeaseStore(), { shortTtlMs: 100 });
