// The cart service: a cart holds product ids; the gateway fans out to the catalog per item.
import { carts } from './data.mjs';
import { BadRequest, jsonBody, serve } from './http.mjs';

const orders = [];
serve('cart', {
  '/carts/:id': ({ id }) => ({ body: carts[id], delay: 10 }),
  // The checkout's last, unsafe step (POST): records an order.
  '/orders': (_params, _url, req, body) => {
    if (req.method !== 'POST') return { status: 405, body: { error: 'POST an order' } };
    const received = jsonBody(body);
    if (typeof received !== 'object' || received === null || Array.isArray(received)) {
      throw new BadRequest('an order is a JSON object, e.g. {"pay":"card"}');
    }
    const order = { orderId: `o${orders.length + 1}`, received };
    orders.push(order);
    return { status: 201, body: order };
  },
});
