import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  type GatewayProcess,
  type Origin,
  ROOT,
  runCli,
  startGatewayCli,
  startOrigin,
  tempDir,
  waitUntil,
} from '../support/index.js';

// The Anti-Corruption Layer through the real `trellis gateway`: the shop's legacy SOAP warehouse
// (a separate process, windows-1252, faults inside 200s) behind a `translate:` route, and a
// hostile legacy origin that answers bombs, garbage and floods.
const WAREHOUSE = join(ROOT, 'examples/shop/services/warehouse.mjs');
const TRANSLATION = join(ROOT, 'examples/shop/acl/warehouse/translation.yaml');

describe('translate: routes through trellis gateway', () => {
  const tmp = tempDir('trellis-acl-');
  let warehouse: ChildProcess;
  let hostile: Origin;
  let gateway: GatewayProcess;
  let hostileReply: (body: string, res: import('node:http').ServerResponse) => void = () => {};

  beforeAll(async () => {
    const port = await freePort();
    warehouse = spawn(process.execPath, [WAREHOUSE, '--port', String(port)], { stdio: 'ignore' });
    await waitUntil(
      async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok,
      'the legacy warehouse to listen',
    );
    hostile = await startOrigin('hostile', (req, res) => hostileReply(req.body, res));
    tmp.write(
      'hostile.yaml',
      `service: hostile
legacy:
  format: soap11
  path: /Svc
  maxBodySize: 64kb
  timeout: 1s
  xml: { arrays: [R.Item] }
request:
  contract: { type: object, required: [qty], properties: { qty: { type: integer, minimum: 1 } }, additionalProperties: false }
toLegacy:
  R.Qty: qty
fromLegacy:
  items: { each: R.Item, map: { n: { from: N, type: integer } } }
`,
    );
    gateway = await startGatewayCli(
      tmp.write('gateway.yaml', ''),
      `listen: { port: 0 }
services:
  warehouse: { upstreams: ['http://127.0.0.1:${port}'] }
  hostile: { upstreams: ['${hostile.url}'] }
routes:
  - name: stock
    match: { path: /api/warehouse/stock/:sku, methods: [GET] }
    translate: { file: ${TRANSLATION} }
  - name: hostile
    match: { path: /hostile, methods: [POST] }
    translate: { file: ./hostile.yaml }
  - name: loop
    match: { path: /loop, methods: [GET] }
    translate:
      service: hostile
      legacy: { format: json, method: GET, path: /loop }
      expressionLimits: { timeout: 100ms }
      toLegacy: { x: { const: 1 } }
      fromLegacy: { expression: '($f := function($x){ $f($x + 1) }; $f(0))' }
`,
    );
  });

  afterAll(async () => {
    await gateway?.stop();
    warehouse?.kill('SIGTERM');
    await hostile?.close();
    tmp.cleanup();
  });

  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(`${gateway.url}${path}`, init);
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      body: (await res.json()) as Record<string, unknown>,
    };
  };

  it('answers modern JSON from the legacy SOAP service', async () => {
    const r = await get('/api/warehouse/stock/1');
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      sku: 1,
      name: 'Arc floor lamp (Größe L)',
      available: 12,
      status: 'active',
      nextDelivery: '2027-01-15',
      lastCounted: '2026-11-30T13:30:00.000Z',
      bins: [
        { id: 'A-01', quantity: 8 },
        { id: 'A-02', quantity: 4 },
      ],
    });
  });

  it('turns SOAP faults and faults inside a 200 into problems without the legacy text', async () => {
    const unknown = await get('/api/warehouse/stock/99');
    expect(unknown.status).toBe(404);
    expect(unknown.type).toBe('application/problem+json');
    expect(unknown.body).toMatchObject({ code: 'TRELLIS_E_LEGACY_FAULT', fault: 'unknown-sku' });
    expect(JSON.stringify(unknown.body)).not.toContain('UNBEKANNT');
    const counting = await get('/api/warehouse/stock/4');
    expect(counting.status).toBe(503);
    expect(counting.body).toMatchObject({ fault: 'stock-taking' });
    expect(JSON.stringify(counting.body)).not.toContain('INVENTUR');
  });

  it('refuses a modern request that breaks its contract with the exact path', async () => {
    const r = await get('/hostile', { method: 'POST', body: JSON.stringify({ qty: 'three' }) });
    expect(r.status).toBe(422);
    expect(r.body).toMatchObject({ code: 'TRELLIS_E_ACL_REQUEST_INVALID' });
    expect((r.body.errors as { path: string }[])[0]!.path).toBe('qty');
    const notJson = await get('/hostile', { method: 'POST', body: '{oops' });
    expect(notJson.status).toBe(400);
  });

  const hostileCases: [string, number, string, (res: import('node:http').ServerResponse) => void][] = [
    [
      'billion laughs',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">${Array.from({ length: 9 }, (_, i) => `<!ENTITY ${'b'.repeat(i + 1)} "${'&a;'.repeat(10)}">`).join('')}]><soap:Envelope><soap:Body>&bbbbbbbbb;</soap:Body></soap:Envelope>`,
        );
      },
    ],
    [
      'external entity',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><soap:Envelope><soap:Body>&x;</soap:Body></soap:Envelope>',
        );
      },
    ],
    [
      'deep nesting',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<soap:Envelope><soap:Body>${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}</soap:Body></soap:Envelope>`,
        );
      },
    ],
    [
      'a body larger than maxBodySize',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        const chunk = Buffer.alloc(64 * 1024, 'x');
        let sent = 0;
        const pump = () => {
          while (sent < 1600 && res.write(chunk)) sent++;
          if (sent < 1600) res.once('drain', pump);
          else res.end();
        };
        pump();
      },
    ],
    [
      'malformed SOAP',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<soap:Envelope><soap:Body><R><Item><N>1</N></R></soap:Body>');
      },
    ],
    [
      'an HTML error page',
      502,
      'TRELLIS_E_LEGACY_FAULT',
      (res) => {
        res.writeHead(500, { 'content-type': 'text/html' });
        res.end('<html><body>java.lang.NullPointerException at com.legacy.Stock</body></html>');
      },
    ],
    [
      'a value that breaks its declared type',
      502,
      'TRELLIS_E_LEGACY_CONTRACT',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end('<soap:Envelope><soap:Body><R><Item><N>twelve</N></Item></R></soap:Body></soap:Envelope>');
      },
    ],
    [
      'the wrong charset',
      502,
      'TRELLIS_E_LEGACY_UNREADABLE',
      (res) => {
        res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' });
        res.end(
          Buffer.concat([
            Buffer.from('<soap:Envelope><soap:Body><R><Item><N>1</N><Name>'),
            Buffer.from([0xe4, 0xf6]),
            Buffer.from('</Name></Item></R></soap:Body></soap:Envelope>'),
          ]),
        );
      },
    ],
    ['no answer in time', 504, 'TRELLIS_E_LEGACY_UNAVAILABLE', () => {}],
  ];

  it.each(hostileCases)(
    'a hostile legacy answer (%s) is a %d problem, never a crash',
    async (_name, status, code, reply) => {
      hostileReply = (_body, res) => reply(res);
      const r = await get('/hostile', { method: 'POST', body: JSON.stringify({ qty: 2 }) });
      expect(r.status).toBe(status);
      expect(r.body).toMatchObject({ code });
      expect(JSON.stringify(r.body)).not.toMatch(/NullPointer|passwd|twelve/);
      // The gateway is still serving.
      expect((await get('/api/warehouse/stock/3')).status).toBe(200);
    },
  );

  it('stops a JSONata expression that loops, and keeps serving', async () => {
    hostileReply = (_b, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    };
    const started = Date.now();
    const r = await get('/loop');
    expect(r.status).toBe(500);
    expect(r.body).toMatchObject({ code: 'TRELLIS_E_ACL_EXPRESSION_LIMIT' });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect((await get('/api/warehouse/stock/1')).status).toBe(200);
  });

  it('trellis acl test passes the shop warehouse golden cases and fails a wrong one with a diff', async () => {
    const ok = await runCli(['acl', 'test', join(ROOT, 'examples/shop/acl/warehouse')]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('4 passed, 0 failed');
    const dir = join(tmp.path, 'golden');
    mkdirSync(dir);
    tmp.write('golden/translation.yaml', 'file: ignored\n');
    const broken = await runCli(['acl', 'test', dir]);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain('translation.yaml');
  });
});
