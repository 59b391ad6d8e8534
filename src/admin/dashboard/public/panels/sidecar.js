// Sidecar (trellis sidecar): the app it runs beside, the building blocks behind its platform API.
export function render(d, { el, table, badge }) {
  const s = d.app?.state;
  const state = badge(s === 'healthy' ? 'ok' : s === 'stopped' ? 'bad' : 'warn', s ?? 'unknown');
  const facts = el(
    'dl',
    { class: 'facts' },
    el('dt', {}, 'App'),
    el('dd', {}, d.app?.name ?? '—', ' ', state),
    el('dt', {}, 'Process'),
    el('dd', {}, d.app?.pid === null ? '—' : String(d.app?.pid)),
    el('dt', {}, 'Restarts'),
    el('dd', {}, String(d.app?.restarts ?? 0)),
  );
  const stores = table(
    'Platform API building blocks',
    ['Block', 'URL'],
    Object.entries(d.stores ?? {}).map(([k, v]) => [k, v]),
  );
  const subs = table(
    'Subscriptions delivered to the app',
    ['Topic', 'Path', 'Group'],
    (d.subscriptions ?? []).map((x) => [x.topic, x.path, x.group ?? '(the app)']),
  );
  return el('div', {}, facts, stores, subs);
}
