// The inventory service: how many of a product are in stock.
import { products, stock } from './data.mjs';
import { serve } from './http.mjs';

serve('inventory', {
  '/stock/:id': ({ id }) => ({
    body: products[id] ? { productId: Number(id), available: stock[id] ?? 0, warehouse: 'AAR-1' } : undefined,
    delay: 25,
  }),
});
