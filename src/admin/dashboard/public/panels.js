// The running parts' panels (GET /admin/panels): one article per panel, drawn by the renderer of
// its kind, `panels/<kind>.js` (exporting `render(data, dom)`), loaded on first use. A kind with
// no renderer file gets the generic one, so a new part shows up before anyone writes its view.
import * as dom from './dom.js';

const { el, badge } = dom;
const KIND = /^[a-z][a-z0-9-]{0,31}$/;
/** kind -> Promise of its render function (the generic one when panels/<kind>.js is missing). */
const renderers = new Map();

function rendererOf(kind) {
  if (!KIND.test(kind)) return Promise.resolve(renderGeneric);
  let found = renderers.get(kind);
  if (!found) {
    found = import(`./panels/${kind}.js`).then(
      (m) => (typeof m.render === 'function' ? m.render : renderGeneric),
      () => renderGeneric,
    );
    renderers.set(kind, found);
  }
  return found;
}

const scalar = (v) =>
  v === null || v === undefined ? '—' : typeof v === 'object' ? el('code', {}, JSON.stringify(v)) : String(v);

/** Any JSON: a list of records as a table, a record as a definition list, anything else as text. */
export function renderGeneric(data) {
  if (Array.isArray(data)) {
    if (data.length === 0) return el('p', { class: 'empty' }, 'Nothing yet.');
    if (data.every((r) => r && typeof r === 'object' && !Array.isArray(r))) {
      const keys = [...new Set(data.flatMap((r) => Object.keys(r)))];
      return dom.table(
        '',
        keys,
        data.map((r) => keys.map((k) => scalar(r[k]))),
      );
    }
    return el(
      'ul',
      {},
      data.map((v) => el('li', {}, scalar(v))),
    );
  }
  if (data && typeof data === 'object') {
    return el(
      'dl',
      { class: 'facts' },
      Object.entries(data).flatMap(([k, v]) => [
        el('dt', {}, k),
        el(
          'dd',
          {},
          Array.isArray(v) && v.length > 0 && typeof v[0] === 'object' ? renderGeneric(v) : scalar(v),
        ),
      ]),
    );
  }
  return el('p', {}, scalar(data));
}

async function renderOne(panel) {
  const head = el(
    'h3',
    {},
    panel.title,
    panel.origin && panel.origin !== 'local' ? el('small', { class: 'muted' }, ` ${panel.origin}`) : '',
  );
  let body;
  if (panel.error !== undefined) {
    body = el('p', {}, badge('bad', 'unavailable'), ` ${panel.error}`);
  } else {
    try {
      const render = await rendererOf(panel.kind);
      body = render(panel.data, dom);
    } catch (err) {
      body = el('p', {}, badge('bad', 'cannot show'), ` ${String(err?.message ?? err)}`);
    }
  }
  return el(
    'article',
    { class: 'panel', 'data-panel-kind': panel.kind, 'data-panel-id': panel.id },
    head,
    body,
  );
}

/** Replaces `container`'s content with one article per panel, and a line per unreachable peer. */
export async function renderPanels(container, answer) {
  const panels = answer?.panels ?? [];
  const peers = (answer?.peers ?? []).filter((p) => !p.ok);
  const nodes = await Promise.all(panels.map(renderOne));
  for (const p of peers) {
    nodes.push(
      el('p', { class: 'peer-down' }, badge('bad', 'peer unreachable'), ` ${p.url}: ${p.error ?? ''}`),
    );
  }
  if (nodes.length === 0) nodes.push(el('p', { class: 'empty' }, 'No part of this process has a panel.'));
  container.replaceChildren(...nodes);
}
