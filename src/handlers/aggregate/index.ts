import { TrellisError } from '../../core/errors.js';
import { defineHandler } from '../types.js';
import { PartCache } from './cache.js';
import { partMetrics, responseMetrics } from './metrics.js';
import { compilePlan } from './plan.js';
import { createAggregate, type PartRuntime } from './run.js';
import { aggregateSchema } from './schema.js';

export { type AggregateOptions, aggregateSchema, type PartOptions, partSchema } from './schema.js';

/**
 * Gateway Aggregation: `aggregate:` on a route calls several services (in parallel where the
 * parts allow) and answers with one composed JSON body. See docs/gateway-aggregation.md.
 */
export const aggregateHandler = defineHandler({
  type: 'aggregate',
  options: aggregateSchema,
  references: (options) =>
    Object.entries(options.parts).map(([name, part]) => ({
      path: ['parts', name, 'service'],
      service: part.service,
    })),
  async create(options, deps) {
    const { plan, issues } = compilePlan(options);
    if (issues.length > 0) {
      // The schema reports these with file positions; reaching here means options were not validated.
      throw new TrellisError(
        'TRELLIS_E_CONFIG_INVALID',
        issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n'),
      );
    }
    const parts: PartRuntime[] = [];
    const caches: PartCache[] = [];
    try {
      for (const p of plan.parts) {
        const pool = deps.services.get(p.service);
        if (!pool) {
          throw new TrellisError(
            'TRELLIS_E_AGGREGATE_UNKNOWN_SERVICE',
            `route ${deps.routeName}: part "${p.name}" names service "${p.service}", which is not in services: add it or fix the name`,
          );
        }
        const cache = p.cache
          ? await PartCache.open(
              p.cache,
              `trellis:aggregate:${deps.routeName}:${p.name}:`,
              deps.shared,
              deps.logger,
              { metrics: deps.metrics, name: `${deps.routeName}:${p.name}` },
            )
          : undefined;
        if (cache) caches.push(cache);
        parts.push({ plan: p, pool, metrics: partMetrics(deps.metrics, deps.routeName, p.name), cache });
      }
    } catch (err) {
      await Promise.allSettled(caches.map((c) => c.close()));
      throw err;
    }
    const handler = createAggregate({
      plan,
      parts,
      maxRequestBody: options.maxRequestBody,
      countResponse: responseMetrics(deps.metrics, deps.routeName),
      incompleteMaxAge: Math.floor(options.incompleteMaxAge / 1000),
    });
    // A reload replaces the handler: release the caches (memory entries; shared stores stay the runtime's).
    return Object.assign(handler, {
      close: async () => {
        await Promise.allSettled(caches.map((c) => c.close()));
      },
    });
  },
});
