// A stand-in for an external payment provider, flaky on purpose: every third call fails with 503
// and one in ten is slow (1.5 s). The shop never calls it directly: checkout goes through
// `trellis ambassador` (ambassador.yaml), whose per-try timeout, retries and breaker hide this.
// Charges are de-duplicated by Idempotency-Key, as real providers do, so retrying a POST is safe.
import { BadRequest, jsonBody, serve } from './http.mjs';

const charges = new Map();
let calls = 0;

serve('payment-provider', {
  '/charges': (_params, _url, req, body) => {
    if (req.method !== 'POST') return { status: 405, body: { error: 'POST a charge' } };
    calls++;
    if (calls % 3 === 0) return { status: 503, body: { error: 'provider overloaded, try again' } };
    const { orderId, amount } = jsonBody(body);
    if (typeof orderId !== 'string' || !Number.isInteger(amount) || amount <= 0) {
      throw new BadRequest('a charge is {"orderId": "…", "amount": <positive integer>}');
    }
    const key = req.headers['idempotency-key'] ?? orderId;
    let charge = charges.get(key);
    if (!charge) {
      charge = { chargeId: `ch_${charges.size + 1}`, orderId, amount, status: 'captured' };
      charges.set(key, charge);
    }
    return { status: 201, body: charge, delay: calls % 10 === 5 ? 1500 : 5 };
  },
});
