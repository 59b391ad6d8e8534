import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isTrellisError } from '../../core/errors.js';
import { LIVE_KEY, type LivePointer } from '../release.js';
import { publish } from './publish.js';

function build(dir: string, version: string): { html: string; js: string; css: string } {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, 'assets'), { recursive: true });
  const js = `assets/app.${version}0000001.js`;
  const css = `assets/site.${version}0000002.css`;
  writeFileSync(join(dir, js), `console.log("${version}");\n`.repeat(100));
  writeFileSync(join(dir, css), `body{color:#${version}}\n`.repeat(100));
  const html = `<!doctype html><link rel=stylesheet href="/${css}"><script src="/${js}"></script><p>${version}</p>`;
  writeFileSync(join(dir, 'index.html'), html);
  writeFileSync(join(dir, 'robots.txt'), `version ${version}`);
  return { html, js, css };
}

describe('static: publish to a folder', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'trellis-publish-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  const pointer = (target: string) => JSON.parse(readFileSync(join(target, LIVE_KEY), 'utf8')) as LivePointer;

  it('orders assets before entries before the switch, and dry-run writes nothing', async () => {
    const src = join(tmp, 'build');
    const target = join(tmp, 'site');
    build(src, 'aaa');
    const dry = await publish({ dir: src, to: target, dryRun: true });
    expect(existsSync(target)).toBe(false);
    const phases = dry.plan.map((s) => s.phase);
    expect(phases.lastIndexOf('assets')).toBeLessThan(phases.indexOf('entries'));
    expect(phases.lastIndexOf('entries')).toBeLessThan(phases.indexOf('switch'));
    expect(dry.plan.at(-1)!.key).toBe(LIVE_KEY);
    expect(dry.plan.some((s) => s.key.endsWith('.js.br'))).toBe(true);

    const events: string[] = [];
    const r = await publish({
      dir: src,
      to: target,
      onEvent: (e) => e.type === 'file' && events.push(e.key),
    });
    expect(events.at(-1)).toBe(LIVE_KEY);
    expect(events.findIndex((k) => k.includes('index.html'))).toBeGreaterThan(
      events.findIndex((k) => k.endsWith('.js')),
    );
    expect(pointer(target).release).toBe(r.release);
  });

  it('keeps the last K releases and their assets, prunes older ones after the switch', async () => {
    const src = join(tmp, 'build');
    const target = join(tmp, 'site');
    const releases: { id: string; js: string }[] = [];
    for (const v of ['aaa', 'bbb', 'ccc']) {
      const b = build(src, v);
      const r = await publish({
        dir: src,
        to: target,
        keep: 2,
        now: new Date(Date.now() + releases.length * 1000),
      });
      releases.push({ id: r.release, js: b.js });
    }
    const live = pointer(target);
    expect(live.release).toBe(releases[2]!.id);
    expect(live.history).toEqual([releases[2]!.id, releases[1]!.id]);
    expect(existsSync(join(target, releases[1]!.js))).toBe(true);
    expect(existsSync(join(target, releases[2]!.js))).toBe(true);
    expect(existsSync(join(target, releases[0]!.js))).toBe(false);
    expect(existsSync(join(target, `.trellis/releases/${releases[0]!.id}.json`))).toBe(false);
  });

  it('skips assets already there and stops when a hashed name has other bytes', async () => {
    const src = join(tmp, 'build');
    const target = join(tmp, 'site');
    const b = build(src, 'aaa');
    const first = await publish({ dir: src, to: target });
    writeFileSync(join(src, 'index.html'), '<p>new html, same assets</p>');
    const second = await publish({ dir: src, to: target, now: new Date(Date.now() + 1000) });
    expect(second.skipped).toBeGreaterThan(0);
    writeFileSync(join(src, b.js), 'other bytes under the same hashed name');
    const err = await publish({ dir: src, to: target, now: new Date(Date.now() + 2000) }).catch(
      (e: unknown) => e,
    );
    expect(isTrellisError(err, 'TRELLIS_E_STATIC_ASSET_CHANGED')).toBe(true);
    // The live release is untouched.
    expect(pointer(target).release).toBe(second.release);
    expect(first.release).not.toBe(second.release);
  });

  it('refuses an unsupported target', async () => {
    const err = await publish({ dir: tmp, to: 'ftp://x/y' }).catch((e: unknown) => e);
    expect(isTrellisError(err, 'TRELLIS_E_STATIC_TARGET_INVALID')).toBe(true);
  });
});
