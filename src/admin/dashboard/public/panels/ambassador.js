// Ambassador (trellis ambassador): the remotes a local client calls, their hedges, and each
// upstream's source (static, dns, registry) and breaker.
export function render(d, { el, table, badge, ms }) {
  const breaker = (b) => badge(b === 'closed' ? 'ok' : b === 'open' ? 'bad' : 'warn', `breaker ${b}`);
  return el(
    'div',
    {},
    ...(d.remotes ?? []).map((r) =>
      table(
        `${r.name}: deadline ${ms(r.timeout / 1000)}, per try ${ms(r.perTryTimeout / 1000)}, ${r.retryAttempts} attempts` +
          (r.hedges === undefined ? '' : `, hedges ${r.hedges.sent} sent, ${r.hedges.won} won`),
        ['Upstream', 'Source', 'Health', 'Breaker', 'In flight'],
        r.upstreams.map((u) => [
          u.id,
          u.source ?? 'static',
          u.ejected ? badge('bad', 'ejected') : u.healthy ? badge('ok', 'healthy') : badge('bad', 'failing'),
          breaker(u.breaker),
          String(u.inFlight),
        ]),
      ),
    ),
  );
}
