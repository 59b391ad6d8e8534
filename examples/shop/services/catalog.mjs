// The catalog service: products and brands. The shop runs two instances behind the gateway.
import { brands, products } from './data.mjs';
import { serve } from './http.mjs';

serve('catalog', {
  '/products': () => ({
    body: Object.values(products).map(({ id, name, price }) => ({ id, name, price })),
    delay: 10,
  }),
  '/products/:id': ({ id }) => ({ body: products[id], delay: 15 }),
  '/brands/:id': ({ id }) => ({ body: brands[id], delay: 10 }),
});
