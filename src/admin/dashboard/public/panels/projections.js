// CQRS read side (trellis/cqrs projectionsPanel): how far each projection is behind the event store.
export function render(d, { table, badge }) {
  const rows = (d.projections ?? []).map((p) => [
    p.name,
    String(p.position),
    p.lag === 0 ? badge('ok', 'up to date') : badge(p.lag > 100 ? 'bad' : 'warn', `${p.lag} behind`),
    p.rebuild ? `copy ${p.rebuild.generation} at ${p.rebuild.position}` : '—',
  ]);
  return table('Position and lag behind the event store', ['Projection', 'Position', 'Lag', 'Rebuild'], rows);
}
