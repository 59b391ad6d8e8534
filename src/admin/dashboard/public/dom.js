// Building blocks the dashboard and every panel renderer (panels/<kind>.js) draw with. Every
// piece of data goes into the page through text nodes (never innerHTML), so nothing an admin
// API returns can become markup.

/** Creates an element; string children become text nodes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return node;
}

/** A table with a caption, column headers and rows of cells (strings or nodes). */
export function table(caption, headers, rows) {
  const head = el(
    'tr',
    {},
    headers.map((h) => el('th', { scope: 'col', ...(h.num ? { class: 'num' } : {}) }, h.label ?? h)),
  );
  const body = rows.map((cells) =>
    el(
      'tr',
      {},
      cells.map((c, i) => el('td', headers[i]?.num ? { class: 'num' } : {}, c)),
    ),
  );
  return el('table', {}, el('caption', {}, caption), el('thead', {}, head), el('tbody', {}, body));
}

export const badge = (kind, text) => el('span', { class: `badge ${kind}` }, text);
export const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : '—');
export const dateTime = (iso) => (iso ? new Date(iso).toLocaleString() : '—');
export const fixed = (n, digits) => (n === undefined ? '—' : n.toFixed(digits));
export const percent = (r) => (r === undefined ? '—' : `${(r * 100).toFixed(r > 0 && r < 0.01 ? 2 : 1)} %`);
export const ms = (s) =>
  s === undefined ? '—' : s < 0.01 ? `${(s * 1000).toFixed(2)} ms` : `${(s * 1000).toFixed(0)} ms`;
