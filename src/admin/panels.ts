/**
 * The admin extension point. A running part (a strangler route, a pipeline stage, a host
 * workload, a sidecar's app, an ambassador's breakers) shows itself on the dashboard with a
 * panel, and offers operator actions (switch a route's mode, replay a dead letter) through
 * `POST /admin/actions/<name>`. Parts carry these on their instances; the runtime and the
 * roles with their own admin listener collect them, so the admin server knows nothing about
 * any pattern.
 */

/** What one part shows on the dashboard; `view()` is called on every `GET /admin/panels`. */
export interface AdminPanel {
  /** The dashboard renderer that draws it (`strangler`, `pipeline`, `host`, …); unknown kinds get a generic one. */
  readonly kind: string;
  /** Unique within the process, e.g. `strangler:inventory`. */
  readonly id: string;
  readonly title: string;
  /** JSON-able data for the renderer. Keep it small: it is polled every few seconds. */
  view(): unknown | Promise<unknown>;
}

/** Who asked for an action (the token holder, named by the `X-Trellis-Author` header or `admin`). */
export interface ActionCaller {
  readonly author: string;
}

/** An operator action, run by `POST /admin/actions/<name>` with the admin token. */
export interface AdminAction {
  /** `<part>.<verb>`, e.g. `strangler.set`: letters, digits, `.`, `-` and `_`. */
  readonly name: string;
  /** One line for `GET /admin/actions`: what it does and the body it takes. */
  readonly describe: string;
  /** Throws a TrellisError (with a 4xx `status`) for bad input; the result is answered as JSON. */
  run(body: unknown, by: ActionCaller): unknown | Promise<unknown>;
}

/** What an instance (handler, middleware, role) may carry for the admin API. */
export interface AdminParts {
  readonly panels?: readonly AdminPanel[];
  readonly actions?: readonly AdminAction[];
}

export const ACTION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A panel's data as `GET /admin/panels` answers it; `origin` names the process it came from. */
export interface PanelView {
  kind: string;
  id: string;
  title: string;
  origin: string;
  data?: unknown;
  /** Set when `view()` failed or timed out: the panel is shown with this instead of data. */
  error?: string;
}
