// The gateway dashboard: polls the admin API every 2 s and renders it. Every piece of data goes
// into the page through textContent (never innerHTML), so nothing the API returns can become markup.
import { badge, dateTime, el, fixed, ms, percent, table, time } from './dom.js';
import { parseSamples, routeTotals, trafficBetween } from './metrics.js';
import { renderPanels } from './panels.js';

const INTERVAL_MS = 2000;
const TIMEOUT_MS = 1500;

const state = {
  /** Route totals and time of the previous /metrics scrape, for rates over the last interval. */
  previous: undefined,
  lastOkAt: undefined,
  timer: undefined,
  busy: false,
};

function replace(id, ...nodes) {
  document.getElementById(id).replaceChildren(...nodes);
}

function renderConfig(config) {
  const facts = el(
    'dl',
    { class: 'facts' },
    el('dt', {}, 'Active version'),
    el('dd', { 'data-testid': 'config-version' }, String(config.version)),
    el('dt', {}, 'Source'),
    el('dd', {}, el('code', {}, String(config.source ?? '—'))),
    el('dt', {}, 'Loaded at'),
    el('dd', {}, dateTime(config.loadedAt)),
    el('dt', {}, 'Last reload'),
    el('dd', { 'data-testid': 'last-reload' }, lastReload(config.lastReload)),
  );
  const nodes = [facts];
  const errors = config.lastReload && !config.lastReload.ok ? (config.lastReload.errors ?? []) : [];
  if (errors.length > 0) {
    nodes.push(
      el(
        'pre',
        {
          class: 'reload-errors',
          'data-testid': 'reload-errors',
          'aria-label': 'Why the reload was rejected',
        },
        errors.join('\n'),
      ),
    );
  }
  replace('config', ...nodes);
}

function lastReload(r) {
  if (!r) return el('span', { class: 'muted' }, 'none since start');
  const when = ` at ${dateTime(r.at)}`;
  if (r.ok) return [badge('ok', 'applied'), ` version ${r.version}${when}`];
  return [badge('bad', 'rejected'), `${when}; still serving version ${r.version}`];
}

function renderTraffic(rows) {
  if (rows.length === 0) {
    replace('traffic', el('p', { class: 'empty' }, 'No requests yet.'));
    return;
  }
  const known = rows.filter((r) => r.perSecond !== undefined);
  const sum = (f) => known.reduce((n, r) => n + f(r), 0);
  const rps = known.length > 0 ? sum((r) => r.perSecond) : undefined;
  const errRps = sum((r) => (r.errorRate ?? 0) * r.perSecond);
  const headline = el(
    'div',
    { class: 'headline' },
    el(
      'div',
      {},
      el('span', { class: 'value' }, fixed(rps, 1)),
      el('span', { class: 'label' }, 'requests/s'),
    ),
    el(
      'div',
      {},
      el('span', { class: 'value' }, rps ? percent(errRps / rps) : '—'),
      el('span', { class: 'label' }, 'errors (5xx)'),
    ),
    el(
      'div',
      {},
      el('span', { class: 'value' }, String(rows.reduce((n, r) => n + r.total, 0))),
      el('span', { class: 'label' }, 'requests since start'),
    ),
  );
  const headers = [
    'Frontend',
    'Route',
    'Service',
    { label: 'Requests/s', num: true },
    { label: 'Errors (5xx)', num: true },
    { label: 'p50', num: true },
    { label: 'p99', num: true },
    { label: 'Total', num: true },
  ];
  const body = rows.map((r) => [
    r.frontend,
    r.route,
    r.service || '—',
    fixed(r.perSecond, 1),
    percent(r.errorRate),
    ms(r.p50),
    ms(r.p99),
    String(r.total),
  ]);
  replace(
    'traffic',
    headline,
    table('Per route, over the last refresh interval (latency from the histogram buckets)', headers, body),
  );
}

function upstreamState(u) {
  // Failing but not (yet) ejected or marked unhealthy is still failing: never show it green.
  const health = !u.healthy
    ? badge('bad', 'unhealthy')
    : u.consecutiveFailures > 0
      ? badge('warn', `failing (${u.consecutiveFailures} in a row)`)
      : badge('ok', 'healthy');
  const ejected = u.ejected
    ? badge('warn', `ejected until ${time(u.ejectedUntil)}`)
    : el('span', { class: 'muted' }, 'not ejected');
  return { health, ejected };
}

function renderServices(data) {
  const services = data.services ?? [];
  if (services.length === 0) {
    replace('services', el('p', { class: 'empty' }, 'No services configured.'));
    return;
  }
  const headers = [
    'Upstream',
    'Health',
    'Ejection',
    { label: 'In flight', num: true },
    { label: 'Weight', num: true },
    { label: 'Consecutive failures', num: true },
    { label: 'Ejections', num: true },
    'Last health check',
  ];
  replace(
    'services',
    ...services.map((s) => {
      const upstreams = s.upstreams ?? [];
      const rows = upstreams.map((u) => {
        const { health, ejected } = upstreamState(u);
        const check = u.lastHealthCheck
          ? `${u.lastHealthCheck.passed ? 'passed' : 'failed'} at ${time(u.lastHealthCheck.at)}${
              u.lastHealthCheck.detail ? ` (${u.lastHealthCheck.detail})` : ''
            }`
          : '—';
        return [
          el('code', {}, u.id),
          health,
          ejected,
          String(u.inFlight),
          String(u.weight),
          String(u.consecutiveFailures),
          String(u.ejections),
          check,
        ];
      });
      const up = upstreams.filter((u) => u.healthy && !u.ejected).length;
      return table(`${s.name} — ${s.balance}, ${up} of ${upstreams.length} in rotation`, headers, rows);
    }),
  );
}

/** The shared stores from /readyz: one connection per store, with its health. */
function renderStores(readiness) {
  const stores = readiness.stores ?? [];
  if (stores.length === 0) {
    replace('stores', el('p', { class: 'empty' }, 'No shared store opened.'));
    return;
  }
  const rows = stores.map((s) => [
    s.name,
    s.backend,
    el('code', {}, s.url),
    s.ok ? badge('ok', 'healthy') : badge('bad', s.detail ? `down: ${s.detail}` : 'down'),
  ]);
  replace(
    'stores',
    table('Shared stores (opened once per process)', ['Name', 'Backend', 'URL', 'Health'], rows),
  );
}

function describeMatch(m) {
  const parts = [];
  if (m.methods) parts.push(m.methods.join(','));
  parts.push(m.path ?? (m.pathPrefix !== undefined ? `${m.pathPrefix}/**` : '/**'));
  if (m.host) parts.push(`host ${[].concat(m.host).join('|')}`);
  if (m.headers) parts.push(`headers ${JSON.stringify(m.headers)}`);
  if (m.query) parts.push(`query ${JSON.stringify(m.query)}`);
  if (m.priority) parts.push(`priority ${m.priority}`);
  return parts.join(' ');
}

function renderRoutes(data) {
  const frontends = Object.entries(data.frontends ?? {});
  if (frontends.length === 0) {
    replace('routes', el('p', { class: 'empty' }, 'No routes configured.'));
    return;
  }
  const headers = ['Route', 'Match', 'Handler', 'Service', 'Middlewares (in order)', 'Listener'];
  replace(
    'routes',
    ...frontends.map(([frontend, routes]) =>
      table(
        `Frontend ${frontend}`,
        headers,
        routes.map((r) => [
          r.name,
          el('code', {}, describeMatch(r.match ?? {})),
          r.handler,
          r.service ?? '—',
          r.middlewares?.length > 0
            ? el(
                'ol',
                { class: 'chain' },
                r.middlewares.map((m) => el('li', {}, m)),
              )
            : el('span', { class: 'muted' }, 'none'),
          r.listener,
        ]),
      ),
    ),
  );
}

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.json();
}

/** /readyz answers 503 with its body when not ready: read it either way. */
async function getReadiness() {
  const res = await fetch('/readyz', { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
  return res.json();
}

async function getText(path) {
  const res = await fetch(path, { cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`${path} answered ${res.status}`);
  return res.text();
}

function setConnection(ok, message) {
  const node = document.getElementById('connection');
  node.textContent = message;
  node.classList.toggle('down', !ok);
  document.getElementById('main').classList.toggle('stale', !ok && state.lastOkAt !== undefined);
  for (const h of document.querySelectorAll('main h2')) {
    let note = h.querySelector('.stale-note');
    if (!note) {
      note = badge('warn stale-note', 'stale');
      h.append(note);
    }
  }
}

/** Fetches everything at once and renders only when every answer came back. */
async function refresh() {
  if (state.busy) return;
  state.busy = true;
  try {
    const [config, routes, services, metrics, readiness, panels] = await Promise.all([
      getJson('/admin/config'),
      getJson('/admin/routes'),
      getJson('/admin/services'),
      getText('/metrics'),
      getReadiness(),
      getJson('/admin/panels'),
    ]).catch((err) => {
      throw Object.assign(err, { unreachable: true });
    });
    const now = Date.now();
    const totals = routeTotals(parseSamples(metrics));
    const seconds = state.previous ? (now - state.previous.at) / 1000 : 0;
    renderConfig(config);
    renderTraffic(trafficBetween(state.previous?.totals, totals, seconds));
    renderServices(services);
    renderStores(readiness);
    renderRoutes(routes);
    await renderPanels(document.getElementById('panels'), panels);
    state.previous = { at: now, totals };
    state.lastOkAt = now;
    setConnection(
      true,
      `Live: updated ${new Date(now).toLocaleTimeString()}, every ${INTERVAL_MS / 1000} s.`,
    );
  } catch (err) {
    const reason = err?.name === 'TimeoutError' ? 'no answer in time' : String(err?.message ?? err);
    const since = state.lastOkAt
      ? `Showing stale data from ${new Date(state.lastOkAt).toLocaleTimeString()}.`
      : 'No data yet.';
    // A failed fetch means the API is away; anything else means it answered what this page cannot show.
    const what = err?.unreachable
      ? `Cannot reach the admin API (${reason}).`
      : `The admin API answered something this page cannot show (${reason}).`;
    setConnection(false, `${what} ${since} Retrying every ${INTERVAL_MS / 1000} s.`);
  } finally {
    state.busy = false;
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, INTERVAL_MS);
}

document.getElementById('refresh').addEventListener('click', async () => {
  await refresh();
  schedule();
});
await refresh();
schedule();
