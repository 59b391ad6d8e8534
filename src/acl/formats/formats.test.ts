import { describe, expect, it } from 'vitest';
import { encodeText } from '../charset.js';
import { createCodec, FormatError, type FormatOptions, formatOptionsSchema, LegacyFault } from './index.js';

const codec = (o: Record<string, unknown>) => createCodec(formatOptionsSchema.parse(o) as FormatOptions);
const soap11 = (body: string) =>
  `<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:w="urn:wh"><soap:Body>${body}</soap:Body></soap:Envelope>`;

describe('XML and SOAP refuse what could hurt', () => {
  const xml = codec({ format: 'xml' });
  it.each([
    [
      'billion laughs',
      '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><r>&lol2;</r>',
    ],
    [
      'external entity',
      '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
    ],
    ['parameter entity', '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1/x.dtd"> %p;]><r/>'],
    ['deep nesting', `${'<a>'.repeat(200)}x${'</a>'.repeat(200)}`],
    ['unclosed tag', '<r><a>1</r>'],
    ['two roots', '<a/><b/>'],
    ['not XML', '<html><body>Internal Server Error'],
  ])('%s', (_name, text) => {
    expect(() => xml.decode(Buffer.from(text))).toThrow(FormatError);
  });

  it('keeps values as strings and makes lists only where declared', () => {
    const c = codec({ format: 'xml', xml: { arrays: ['Stock.Item'] } });
    expect(c.decode(Buffer.from('<Stock><Item><Sku>00123</Sku></Item><Total>1</Total></Stock>'))).toEqual({
      Stock: { Item: [{ Sku: '00123' }], Total: '1' },
    });
  });

  it('decodes the five predefined entities and character references only', () => {
    expect(xml.decode(Buffer.from('<r>a &amp; b &lt;c&gt; &#233;</r>'))).toEqual({ r: 'a & b <c> é' });
  });

  it('reads a SOAP 1.1 body without namespace prefixes', () => {
    const c = codec({ format: 'soap11', xml: { arrays: ['GetStockResponse.Bin'] } });
    const body = c.decode(
      Buffer.from(soap11('<w:GetStockResponse><w:Qty>5</w:Qty><w:Bin>A</w:Bin></w:GetStockResponse>')),
    );
    expect(body).toEqual({ GetStockResponse: { Qty: '5', Bin: ['A'] } });
  });

  it('turns SOAP 1.1 and 1.2 faults into LegacyFault', () => {
    const c11 = codec({ format: 'soap11' });
    const f11 = (() => {
      try {
        c11.decode(
          Buffer.from(
            soap11(
              '<soap:Fault><faultcode>soap:Client</faultcode><faultstring>Unknown SKU</faultstring></soap:Fault>',
            ),
          ),
        );
      } catch (e) {
        return e;
      }
    })() as LegacyFault;
    expect(f11).toBeInstanceOf(LegacyFault);
    expect([f11.code, f11.message]).toEqual(['soap:Client', 'Unknown SKU']);
    const c12 = codec({ format: 'soap12' });
    const xml12 =
      '<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>wh:NoSuchSku</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">no such SKU</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>';
    const f12 = (() => {
      try {
        c12.decode(Buffer.from(xml12));
      } catch (e) {
        return e;
      }
    })() as LegacyFault;
    expect([f12.code, f12.message]).toEqual(['wh:NoSuchSku', 'no such SKU']);
  });

  it('refuses XML that is not an envelope, or an envelope without a Body', () => {
    const c = codec({ format: 'soap11' });
    expect(() => c.decode(Buffer.from('<Stock/>'))).toThrow('not a SOAP envelope');
    expect(() =>
      c.decode(
        Buffer.from('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"></soap:Envelope>'),
      ),
    ).toThrow('no Body');
  });

  it('writes an envelope with the declared namespaces, escaping values', () => {
    const c = codec({
      format: 'soap11',
      soapAction: 'urn:wh#GetStock',
      xml: { namespaces: { w: 'urn:wh' } },
    });
    const text = c.encode({ 'w:GetStock': { 'w:Sku': 'A&B<1>' } }).toString();
    expect(text).toContain('xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"');
    expect(text).toContain('xmlns:w="urn:wh"');
    expect(text).toContain('<w:Sku>A&amp;B&lt;1&gt;</w:Sku>');
    expect(c.requestHeaders.soapaction).toBe('"urn:wh#GetStock"');
    expect(c.decode(Buffer.from(text))).toEqual({ GetStock: { Sku: 'A&B<1>' } });
  });
});

describe('records and charsets', () => {
  it('reads and writes CSV with quoting', () => {
    const c = codec({ format: 'csv', csv: { delimiter: ';' } });
    const rows = [{ sku: 'A1', name: 'Nut; steel', note: 'say "hi"' }];
    const bytes = c.encode(rows);
    expect(bytes.toString()).toBe('sku;name;note\r\nA1;"Nut; steel";"say ""hi"""\r\n');
    expect(c.decode(bytes)).toEqual(rows);
    expect(() => c.decode(Buffer.from('a;b\r\n1;2;3\r\n'))).toThrow(FormatError);
  });

  it('reads and writes fixed-width records, refusing wrong lengths and overflow', () => {
    const c = codec({
      format: 'fixed',
      fixed: {
        fields: [
          { name: 'sku', width: 6 },
          { name: 'qty', width: 4, align: 'right', pad: '0' },
        ],
      },
    });
    expect(c.encode([{ sku: 'A1', qty: '42' }]).toString()).toBe('A1    0042\r\n');
    expect(c.decode(Buffer.from('A1    0042\nB2    0007\n'))).toEqual([
      { sku: 'A1    ', qty: '0042' },
      { sku: 'B2    ', qty: '0007' },
    ]);
    expect(() => c.decode(Buffer.from('A1   0042\n'))).toThrow(
      'record 1 is 9 characters; the layout says 10',
    );
    expect(() => c.encode([{ sku: 'TOOLONG', qty: '1' }])).toThrow('longer than its 6 characters');
    expect(() => formatOptionsSchema.parse({ format: 'fixed' })).toThrow('needs fixed');
  });

  it('decodes EBCDIC (cp037) and windows-1252 records', () => {
    const c = codec({
      format: 'fixed',
      charset: 'IBM037',
      fixed: { fields: [{ name: 'name', width: 5 }], separator: 'none' },
    });
    expect(c.decode(encodeText('HelloWorld', 'cp037'))).toEqual([{ name: 'Hello' }, { name: 'World' }]);
    const w = codec({ format: 'json', charset: 'windows-1252' });
    expect(w.decode(encodeText('{"city":"Köln €"}', 'windows-1252'))).toEqual({ city: 'Köln €' });
  });

  it('refuses an answer in the wrong charset instead of guessing', () => {
    const c = codec({ format: 'json' });
    expect(() => c.decode(encodeText('{"city":"Köln"}', 'latin1'))).toThrow('not valid UTF-8');
    expect(() => codec({ format: 'json', charset: 'klingon' })).toThrow('unknown charset');
  });
});
