// Leader election (trellis/leader leaderPanel): who leads the group, and whether it is this candidate.
export function render(d, { el, badge }) {
  return el(
    'dl',
    { class: 'facts' },
    el('dt', {}, 'Group'),
    el('dd', {}, d.group),
    el('dt', {}, 'Leader'),
    el('dd', { 'data-testid': 'leader' }, d.leader ?? 'none (an election is under way)'),
    el('dt', {}, 'This candidate'),
    el('dd', {}, d.identity, ' ', d.isLeader ? badge('ok', 'leading') : badge('warn', 'following')),
    el('dt', {}, 'Fencing token'),
    el('dd', {}, d.token === null ? '—' : String(d.token)),
  );
}
