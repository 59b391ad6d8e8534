import { z } from 'zod';
import type { AdminAction, AdminPanel } from '../admin/panels.js';
import { TrellisError } from '../core/errors.js';
import { MODES } from './state.js';
import { type StranglerRouteView, stranglerRoutes } from './views.js';

const TOP_FIELDS = 5;

/**
 * A strangled route's dashboard panel: its mode, how traffic splits, the shadow copies, the
 * mismatch rate and the fields that differ most (noise learned from legacy left out), and the
 * guard rails' verdict: the evidence an operator reads before `strangler.set` moves it on.
 */
export function stranglerPanel(view: StranglerRouteView): AdminPanel {
  return {
    kind: 'strangler',
    id: `strangler:${view.route}`,
    title: `Strangler: ${view.route}`,
    view: () => {
      const report = view.report(TOP_FIELDS);
      return {
        route: view.route,
        legacy: view.legacy,
        modern: view.modern,
        ...view.live(),
        split: view.split(),
        errors: view.errors(),
        shadow: view.shadow(),
        compared: report.compared,
        mismatched: report.mismatched,
        mismatchRate: report.rate,
        copyFailures: report.failed,
        fields: report.fields.slice(0, TOP_FIELDS).map((f) => ({ path: f.path, count: f.count })),
        guard: view.guard() ?? null,
      };
    },
  };
}

const stepBody = z.strictObject({
  route: z.string().min(1),
  mode: z.enum(MODES).optional(),
  weight: z.number().min(0).max(100).optional(),
  reverseShadow: z.boolean().optional(),
  reason: z.string().max(500).optional(),
  force: z.boolean().optional(),
});

/**
 * `POST /admin/actions/strangler.set` with `{ route, mode?, weight?, reverseShadow?, reason?,
 * force? }`: the same step as `trellis strangler set`, guard rails included, recorded with the
 * caller as its author. Every strangled route carries the same action (the first one answers).
 */
export const stranglerSetAction: AdminAction = {
  name: 'strangler.set',
  describe: '{ route, mode?, weight?, reverseShadow?, reason?, force? }: move a strangled route on (or back)',
  async run(body, by) {
    const parsed = stepBody.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new TrellisError(
        'TRELLIS_E_STRANGLER_STATE_INVALID',
        `${issue.path.join('.') || 'body'}: ${issue.message}; send { "route": "stock-api", "mode": "canary", "weight": 10 }`,
        { status: 400 },
      );
    }
    const { route, ...change } = parsed.data;
    const view = stranglerRoutes.get(route);
    if (!view) {
      throw new TrellisError(
        'TRELLIS_E_STRANGLER_ROUTE_UNKNOWN',
        `no strangled route "${route}" here; routes: ${[...stranglerRoutes.keys()].join(', ') || 'none'}`,
        { status: 404 },
      );
    }
    const { before, written } = await view.step({ ...change, by: by.author });
    return { route, before: before ?? null, now: written };
  },
};
