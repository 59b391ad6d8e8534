// Headline traffic figures from the gateway's Prometheus text (/metrics). Pure functions, no DOM,
// so the unit tier tests them in Node and the page imports them as they are (no build step).
// Hand-written because the one library that parses this format in browsers would need a bundler.

const REQUESTS = 'trellis_gateway_requests_total';
const BUCKET = 'trellis_gateway_request_duration_seconds_bucket';

/** Parses one label set `a="x",b="y\"z"` into an object (Prometheus escapes \\, \" and \n). */
function parseLabels(text) {
  const labels = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

/** The samples of the named families in Prometheus text: `{ name, labels, value }[]`. */
export function parseSamples(text, names = [REQUESTS, BUCKET]) {
  const wanted = new Set(names);
  const samples = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null || !wanted.has(m[1])) continue;
    samples.push({ name: m[1], labels: parseLabels(m[2] ?? ''), value: Number(m[3]) });
  }
  return samples;
}

/** Per-route totals: `Map<key, { frontend, route, service, total, errors, buckets: [le, count][] }>`. */
export function routeTotals(samples) {
  const routes = new Map();
  const entry = (l) => {
    const key = `${l.frontend}\u0000${l.route}`;
    let r = routes.get(key);
    if (r === undefined) {
      r = { frontend: l.frontend, route: l.route, service: l.service, total: 0, errors: 0, buckets: [] };
      routes.set(key, r);
    }
    return r;
  };
  for (const s of samples) {
    if (s.name === REQUESTS) {
      const r = entry(s.labels);
      r.total += s.value;
      if (Number(s.labels.code) >= 500) r.errors += s.value;
    } else if (s.name === BUCKET) {
      const le = s.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(s.labels.le);
      entry(s.labels).buckets.push([le, s.value]);
    }
  }
  for (const r of routes.values()) r.buckets.sort((a, b) => a[0] - b[0]);
  return routes;
}

/**
 * The q-quantile (0..1) of a cumulative histogram `[le, count][]`, interpolated linearly inside
 * its bucket as Prometheus' histogram_quantile does; undefined when it holds no observations.
 */
export function histogramQuantile(q, buckets) {
  const total = buckets.length > 0 ? buckets[buckets.length - 1][1] : 0;
  if (!(total > 0)) return undefined;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      // Past the last finite bound there is nothing to interpolate to: report that bound.
      if (le === Number.POSITIVE_INFINITY) return prevLe;
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}

/**
 * Traffic per route between two scrapes taken `seconds` apart: requests per second, error rate
 * (5xx share) and p50/p99 of the requests in that interval. A route absent from `before` counts
 * from zero; counters that went backwards (a restart) count from zero too.
 */
export function trafficBetween(before, after, seconds) {
  const rows = [];
  for (const [key, now] of after) {
    const then = before?.get(key);
    const reset = then !== undefined && now.total < then.total;
    const base = then === undefined || reset ? undefined : then;
    const requests = now.total - (base?.total ?? 0);
    const errors = now.errors - (base?.errors ?? 0);
    const buckets = now.buckets.map(([le, count], i) => [le, count - (base?.buckets[i]?.[1] ?? 0)]);
    rows.push({
      frontend: now.frontend,
      route: now.route,
      service: now.service,
      total: now.total,
      perSecond: seconds > 0 ? requests / seconds : undefined,
      errorRate: requests > 0 ? errors / requests : undefined,
      p50: histogramQuantile(0.5, buckets),
      p99: histogramQuantile(0.99, buckets),
    });
  }
  rows.sort((a, b) => a.frontend.localeCompare(b.frontend) || a.route.localeCompare(b.route));
  return rows;
}
