// External configuration (trellis/config configPanel): live or last-known-good, documents, flags.
export function render(d, { el, table, badge, dateTime }) {
  const h = d.health ?? {};
  const source =
    h.source === 'store'
      ? badge('ok', `live at revision ${h.revision}`)
      : h.source === 'last-known-good'
        ? badge('warn', `last-known-good copy at revision ${h.revision}${h.error ? `: ${h.error}` : ''}`)
        : badge('bad', 'no configuration yet');
  const flags = (d.flags ?? []).map((f) => [
    f.name,
    f.malformed
      ? badge('bad', 'malformed: treated as off')
      : f.enabled
        ? badge('ok', 'on')
        : badge('warn', 'off'),
    f.rollout === null || f.rollout === undefined ? 'everyone' : `${f.rollout} %`,
    String(f.rules ?? 0),
  ]);
  const docs = (d.documents ?? []).map((doc) => [
    doc.key,
    String(doc.revision),
    doc.author,
    dateTime(doc.time),
  ]);
  return el(
    'div',
    {},
    el('p', {}, source),
    flags.length > 0 ? table('Feature flags', ['Flag', 'State', 'Rollout', 'Rules'], flags) : '',
    table('Documents', ['Key', 'Revision', 'Author', 'Written'], docs),
  );
}
