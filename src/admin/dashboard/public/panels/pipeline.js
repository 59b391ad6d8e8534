// Pipes and Filters (trellis pipeline run): each stage's throughput, backlog and failures, over every instance.
export function render(d, { table, badge }) {
  const rows = (d.stages ?? []).map((s) => [
    s.stage + (s.here ? '' : ' (elsewhere)'),
    s.instances > 0 ? badge('ok', `${s.instances} up`) : badge('warn', 'none up'),
    `${s.in} / ${s.out}`,
    s.depth === undefined ? '—' : String(s.depth),
    `${s.rate}/s`,
    `${s.lagSeconds.toFixed(2)} s`,
    s.errors === 0 ? '0' : badge('warn', String(s.errors)),
    s.deadLetters === 0 ? '0' : badge('bad', String(s.deadLetters)),
  ]);
  return table(
    `Stages of ${d.pipeline}`,
    ['Stage', 'Instances', 'In / out', 'Depth', 'Rate', 'Lag', 'Errors', 'Dead letters'],
    rows,
  );
}
