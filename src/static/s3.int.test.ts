import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../gateway/gateway.js';
import { serviceUrl } from '../testing/services.js';
import { publish } from './publish/publish.js';

const url = await serviceUrl('s3');

/** A build whose HTML names its hashed assets, like a bundler's output. */
function build(dir: string, version: string, assets = 6): string[] {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'assets'), { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < assets; i++) {
    const name = `assets/chunk${i}.${version}${String(i).padStart(6, '0')}.js`;
    writeFileSync(join(dir, name), `export const v = "${version}-${i}";\n`.repeat(80));
    names.push(name);
  }
  const html = `<!doctype html><title>${version}</title>${names.map((n) => `<script src="/${n}"></script>`).join('')}`;
  writeFileSync(join(dir, 'index.html'), html);
  return names;
}

describe.skipIf(!url)('static: publish to and serve from S3-compatible storage', () => {
  const endpoint = new URL(url ?? 'http://x');
  const s3 = { endpoint: `${endpoint.protocol}//${endpoint.host}`, region: 'us-east-1' };
  const bucket = `trellis-static-${randomBytes(4).toString('hex')}`;
  const target = `s3://${bucket}/site`;
  let tmp: string;
  let client: S3Client;
  let gw: Gateway;
  let base: string;

  beforeAll(async () => {
    process.env.AWS_ACCESS_KEY_ID = decodeURIComponent(endpoint.username || 'S3RVER');
    process.env.AWS_SECRET_ACCESS_KEY = decodeURIComponent(endpoint.password || 'S3RVER');
    client = new S3Client({ ...s3, forcePathStyle: true });
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    tmp = mkdtempSync(join(tmpdir(), 'trellis-static-s3-'));
  });

  afterAll(async () => {
    await gw?.stop(1_000);
    client?.destroy();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('uploads with Content-Type, Cache-Control and Content-Encoding metadata, then serves it', async () => {
    const src = join(tmp, 'build');
    const names = build(src, 'aaa');
    const result = await publish({ dir: src, to: target, s3 });
    expect(result.uploaded).toBeGreaterThan(names.length);
    const asset = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `site/${names[0]}` }));
    expect(asset.ContentType).toBe('text/javascript; charset=utf-8');
    expect(asset.CacheControl).toBe('public, max-age=31536000, immutable');
    const br = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `site/${names[0]}.br` }));
    expect(br.ContentEncoding).toBe('br');

    gw = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
routes:
  - match: { path: /* }
    static: { root: '${target}', revalidate: 100ms, s3: { endpoint: '${s3.endpoint}', region: us-east-1 } }
`,
    });
    base = `http://127.0.0.1:${gw.ports.main}`;
    const home = await fetch(`${base}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toContain('<title>aaa</title>');
    expect(home.headers.get('cache-control')).toBe('no-cache');
    const js = await fetch(`${base}/${names[0]}`, { headers: { 'accept-encoding': 'br' } });
    expect(js.headers.get('content-encoding')).toBe('br');
    expect(js.headers.get('vary')).toBe('Accept-Encoding');
    const again = await fetch(`${base}/${names[0]}`, {
      headers: { 'if-none-match': js.headers.get('etag')!, 'accept-encoding': 'br' },
    });
    expect(again.status).toBe(304);
    const part = await fetch(`${base}/${names[0]}`, {
      headers: { range: 'bytes=0-5', 'accept-encoding': 'identity' },
    });
    expect(part.status).toBe(206);
    expect(await part.text()).toBe('export');
    expect((await fetch(`${base}/.trellis/live.json`)).status).toBe(404);
  });

  it('shows zero asset 404s to clients while a new release is published', async () => {
    const src = join(tmp, 'build');
    const oldAssets = build(join(tmp, 'old'), 'aaa');
    build(src, 'bbb', 40);
    let stop = false;
    const failures: string[] = [];
    const titles = new Set<string>();
    let requests = 0;
    const client = async () => {
      while (!stop) {
        const html = await (await fetch(`${base}/`)).text();
        titles.add(/<title>(\w+)/.exec(html)?.[1] ?? '?');
        const refs = [...html.matchAll(/src="\/([^"]+)"/g)].map((m) => m[1]!);
        for (const path of [...refs, ...oldAssets]) {
          const res = await fetch(`${base}/${path}`);
          await res.arrayBuffer();
          requests++;
          if (res.status !== 200) failures.push(`${res.status} ${path}`);
        }
      }
    };
    const load = Promise.all([client(), client(), client()]);
    await publish({ dir: src, to: target, s3, keep: 3, concurrency: 2 });
    const deadline = Date.now() + 10_000;
    while (!titles.has('bbb') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await load;
    expect(failures).toEqual([]);
    expect(titles.has('aaa')).toBe(true);
    expect(titles.has('bbb')).toBe(true);
    expect(requests).toBeGreaterThan(50);
  });

  it('prunes releases beyond keep only after the switch, keeping what kept releases use', async () => {
    const src = join(tmp, 'build');
    const firstAssets = build(join(tmp, 'first'), 'aaa');
    for (const v of ['ccc', 'ddd']) {
      build(src, v);
      await publish({ dir: src, to: target, s3, keep: 2, now: new Date(Date.now() + 1000 * v.length) });
    }
    const gone = await client
      .send(new HeadObjectCommand({ Bucket: bucket, Key: `site/${firstAssets[0]}` }))
      .then(
        () => false,
        () => true,
      );
    expect(gone).toBe(true);
    const deadline = Date.now() + 10_000;
    let html = '';
    while (!html.includes('ddd') && Date.now() < deadline) html = await (await fetch(`${base}/`)).text();
    expect(html).toContain('<title>ddd</title>');
  });

  it("serves the example shop's web front from the bucket", async () => {
    const shopTarget = `s3://${bucket}/shop`;
    await publish({ dir: join(import.meta.dirname, '../../examples/shop/public'), to: shopTarget, s3 });
    const shop = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
routes:
  - match: { path: /* }
    static: { root: '${shopTarget}', spa: true, s3: { endpoint: '${s3.endpoint}' } }
`,
    });
    try {
      const shopUrl = `http://127.0.0.1:${shop.ports.main}`;
      const html = await (await fetch(`${shopUrl}/products/1`)).text();
      const refs = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
      expect(refs.length).toBe(2);
      for (const ref of refs) {
        const res = await fetch(`${shopUrl}/${ref}`);
        expect(res.status, ref).toBe(200);
        expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      }
    } finally {
      await shop.stop(1_000);
    }
  });

  it('answers 503 with a clear code while a bucket has no live release', async () => {
    const empty = await startGateway({
      text: `listen: { port: 0, host: 127.0.0.1 }
admin: { enabled: false }
routes:
  - match: { path: /* }
    static: { root: 's3://${bucket}/never-published', s3: { endpoint: '${s3.endpoint}' } }
`,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${empty.ports.main}/index.html`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { code: string }).code).toBe('TRELLIS_E_STATIC_NOT_PUBLISHED');
    } finally {
      await empty.stop(1_000);
    }
  });
});
