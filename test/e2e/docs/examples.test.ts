import { describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../support/index.js';
import { docsExamples, extractExamples, missingOutput, runExample } from './examples.js';

/**
 * Every runnable example in docs/ (a fenced block marked `<!-- trellis-example: NAME -->`, see
 * docs/architecture.md, "Runnable examples") runs as written, against the built CLI, in a fresh
 * temporary folder. An example that stops working fails here, naming its page and line.
 */
const examples = docsExamples(ROOT);

describe('the extractor', () => {
  it('groups marked blocks by name in order, and refuses markers it cannot run', () => {
    const md = [
      '# Page',
      '<!-- trellis-example: one file=app/a.yaml -->',
      '```yaml',
      'a: 1',
      '```',
      'text',
      '```sh',
      'not marked',
      '```',
      '<!-- trellis-example: one -->',
      '```sh',
      'cat app/a.yaml',
      '```',
    ].join('\n');
    const [one] = extractExamples('p.md', md);
    expect(one!.blocks.map((b) => [b.line, b.file, b.text])).toEqual([
      [3, 'app/a.yaml', 'a: 1\n'],
      [11, undefined, 'cat app/a.yaml\n'],
    ]);
    expect(() => extractExamples('p.md', '<!-- trellis-example: x -->\n```ts\nx\n```')).toThrow(/must be sh/);
    expect(() => extractExamples('p.md', '<!-- trellis-example: x -->\ntext')).toThrow(
      /line above a fenced block/,
    );
    expect(() => extractExamples('p.md', '<!-- trellis-example: x lang=ts -->\n```sh\n```')).toThrow(
      /unknown/,
    );
  });

  it('checks #> output lines in order, with … as a wildcard', () => {
    const script = 'echo a\n#> status 202\n#> leader:  …-host\n';
    expect(missingOutput(script, 'status 202 ok\nleader:  web-2-host\n')).toBeUndefined();
    expect(missingOutput(script, 'leader:  web-2-host\nstatus 202\n')).toBe('leader:  …-host');
    expect(missingOutput(script, 'status 200\n')).toBe('status 202');
  });

  it('finds examples in the docs', () => {
    expect(examples.length).toBeGreaterThan(0);
  });
});

describe('docs examples run as written', () => {
  for (const example of examples) {
    it(`${example.page}: ${example.name}`, { timeout: 120_000 }, async () => {
      const dir = tempDir('trellis-docs-example-');
      try {
        await runExample(example, dir.path, { root: ROOT });
      } finally {
        dir.cleanup();
      }
    });
  }
});
