// Compute Resource Consolidation (trellis host): the workloads one process runs, each in its own worker.
export function render(d, { el, table, badge, percent }) {
  const state = (s) => badge(s === 'ready' ? 'ok' : s === 'failed' ? 'bad' : 'warn', s);
  const mb = (b) => (b === undefined ? '—' : `${(b / 1048576).toFixed(1)} MB`);
  const rows = (d.workloads ?? []).map((w) => [
    w.name,
    `${w.kind}${w.isolation === 'process' ? ' (process)' : ''}`,
    w.leading === undefined
      ? state(w.state)
      : el('span', {}, state(w.state), ' ', w.leading ? badge('ok', 'leading') : badge('muted', 'standby')),
    String(w.restarts) + (w.lastExit ? ` (last: ${w.lastExit.reason})` : ''),
    mb(w.heapBytes),
    percent(w.eventLoopUtilization),
    `${w.handled} / ${w.errors} errors`,
  ]);
  return table(
    'Workloads in this host',
    ['Workload', 'Kind', 'State', 'Restarts', 'Heap', 'Event loop', 'Handled'],
    rows,
  );
}
