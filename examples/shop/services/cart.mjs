// The cart service: a cart holds product ids; the gateway fans out to the catalog per item. It
// also knows the customers (the order pipeline enriches each order with its customer).
import { carts, customers } from './data.mjs';
import { serve } from './http.mjs';

serve('cart', {
  '/carts/:id': ({ id }) => ({ body: carts[id], delay: 10 }),
  '/customers/:id': ({ id }) => ({ body: customers[id] }),
});
