// Strangler Fig (a strangler: route): where the route stands on the way from legacy to modern, and the evidence.
export function render(d, { el, table, badge, percent }) {
  const mode = d.mode === 'canary' ? `canary ${d.weight} %` : d.mode;
  const rate = d.compared === 0 ? '—' : percent(d.mismatchRate);
  const verdict = d.guard?.verdict;
  const facts = el(
    'dl',
    { class: 'facts' },
    el('dt', {}, 'Mode'),
    el('dd', { 'data-testid': 'mode' }, badge(d.mode === 'retired' ? 'bad' : 'ok', mode)),
    el('dt', {}, 'Legacy → modern'),
    el('dd', {}, `${d.legacy} → ${d.modern}`),
    el('dt', {}, 'Answered by'),
    el('dd', {}, `legacy ${d.split?.legacy ?? 0}, modern ${d.split?.modern ?? 0}`),
    el('dt', {}, 'Shadow copies'),
    el('dd', {}, `${d.shadow?.sent ?? 0} sent, ${d.shadow?.dropped ?? 0} dropped`),
    el('dt', {}, 'Mismatch rate'),
    el(
      'dd',
      { 'data-testid': 'mismatch-rate' },
      `${rate} of ${d.compared} compared`,
      d.copyFailures ? ` (${d.copyFailures} copies failed)` : '',
    ),
    el('dt', {}, 'Guard rails'),
    el(
      'dd',
      {},
      verdict ? badge(verdict.action === 'ok' ? 'ok' : 'warn', verdict.why ?? verdict.action) : '—',
    ),
  );
  const fields = table(
    'Fields that differ most',
    ['Field', 'Mismatches'],
    (d.fields ?? []).map((f) => [f.path, String(f.count)]),
  );
  return el('div', {}, facts, fields);
}
