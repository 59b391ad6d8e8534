// The new inventory service strangling the legacy one (the gateway's `stock-api` route, a
// `strangler:` handler; see docs/strangler-fig.md). Same API; it also says when it counted
// (`checkedAt`, ignored by the comparison), and, as rewrites do, it still has one difference to
// find: it writes the warehouse code in lower case.
import { products, stock } from './data.mjs';
import { serve } from './http.mjs';

serve('inventory-v2', {
  '/stock/:id': ({ id }) => ({
    body: products[id]
      ? {
          productId: Number(id),
          available: stock[id] ?? 0,
          warehouse: 'aar-1',
          checkedAt: new Date().toISOString(),
        }
      : undefined,
    delay: 5,
  }),
});
