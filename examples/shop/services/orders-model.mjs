// The orders model (CQRS with event sourcing), pure code: the decider holds the rules of an order,
// the projections turn its events into the order history read model and the order pipeline feed.
import { rejectCommand, sql } from 'trellis/cqrs';

/** place → pay (or payment fails): an order's whole life as events. */
export const order = {
  initialState: () => ({ status: 'none', total: 0, customer: undefined }),
  decide(command, state) {
    switch (command.type) {
      case 'Place': {
        if (state.status !== 'none') throw rejectCommand('the order exists already');
        if (command.items.length === 0) throw rejectCommand('the cart is empty: add a product first');
        const { customer, items, total, shipping, flow } = command;
        return { type: 'OrderPlaced', data: { customer, items, total, shipping, flow } };
      }
      case 'Pay':
        if (state.status !== 'placed') throw rejectCommand(`cannot pay an order that is ${state.status}`);
        return {
          type: 'OrderPaid',
          data: { chargeId: command.chargeId, amount: state.total, customer: state.customer },
        };
      case 'FailPayment':
        if (state.status !== 'placed') throw rejectCommand(`the order is ${state.status} already`);
        return { type: 'OrderPaymentFailed', data: { reason: command.reason } };
      default:
        throw rejectCommand(`unknown command ${command.type}`);
    }
  },
  evolve(state, event) {
    switch (event.type) {
      case 'OrderPlaced':
        return { status: 'placed', total: event.data.total, customer: event.data.customer };
      case 'OrderPaid':
        return { ...state, status: 'paid' };
      case 'OrderPaymentFailed':
        return { ...state, status: 'payment-failed' };
      default:
        return state;
    }
  },
};

/** The order history page's read model: one row per order, kept up to date asynchronously. */
export const orderHistory = {
  name: 'order_history',
  tables: ['order_history'],
  async setup(tx, t) {
    await sql(
      tx,
      `CREATE TABLE ${t('order_history')} (id TEXT PRIMARY KEY, customer TEXT, total INTEGER,
        shipping INTEGER, flow TEXT, status TEXT, charge_id TEXT, reason TEXT, placed_at TEXT)`,
    );
    await sql(tx, `CREATE INDEX ${t('order_history')}_customer ON ${t('order_history')} (customer)`);
  },
  async apply(events, tx, t) {
    const table = t('order_history');
    for (const e of events) {
      const id = e.streamId.replace(/^order-/, '');
      if (e.type === 'OrderPlaced') {
        const { customer, total, shipping, flow } = e.data;
        await sql(
          tx,
          `INSERT INTO ${table} (id, customer, total, shipping, flow, status, placed_at)
           VALUES ($1, $2, $3, $4, $5, 'placed', $6)`,
          [id, customer, total, shipping, flow, e.recordedAt.toISOString()],
        );
      } else if (e.type === 'OrderPaid') {
        await sql(tx, `UPDATE ${table} SET status = 'paid', charge_id = $1 WHERE id = $2`, [
          e.data.chargeId,
          id,
        ]);
      } else if (e.type === 'OrderPaymentFailed') {
        await sql(tx, `UPDATE ${table} SET status = 'payment-failed', reason = $1 WHERE id = $2`, [
          e.data.reason,
          id,
        ]);
      }
    }
  },
};

/**
 * The feed into the order pipeline: each paid order is sent to the pipeline's HTTP input before the
 * checkpoint moves past it (at least once; the event's id is its idempotency key, so a resend
 * after a crash is recognised downstream). `send` is given by the service.
 */
export function orderFeed(send) {
  return {
    name: 'order_feed',
    tables: [],
    batchSize: 20,
    eventTypes: ['OrderPaid'],
    async setup() {},
    async apply(events) {
      for (const e of events) {
        await send({
          eventId: e.id,
          type: e.type,
          orderId: e.streamId.replace(/^order-/, ''),
          ...e.data,
        });
      }
    },
  };
}

export const projections = [orderHistory, orderFeed(async () => {})];
