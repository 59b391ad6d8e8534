// The legacy warehouse: a SOAP 1.1 stock service from another era. It speaks windows-1252, pads
// item numbers to seven digits, writes dates as YYYYMMDD, uses one-letter status codes, and
// reports a depot in stock-taking as ResultCode 17 inside a 200. Nobody may change it; the shop
// reaches it only through the gateway's `translate:` route (the anti-corruption layer).
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { products, stock } from './data.mjs';

const { values } = parseArgs({ options: { port: { type: 'string' }, name: { type: 'string' } } });
const name = values.name ?? 'warehouse';

// windows-1252 for the characters this service ever writes (ASCII plus German letters).
const CP1252 = { ä: 0xe4, ö: 0xf6, ü: 0xfc, Ä: 0xc4, Ö: 0xd6, Ü: 0xdc, ß: 0xdf };
const encode = (text) =>
  Buffer.from([...text].map((ch) => CP1252[ch] ?? (ch.charCodeAt(0) < 128 ? ch.charCodeAt(0) : 0x3f)));

const envelope = (body) =>
  `<?xml version="1.0" encoding="windows-1252"?>\r\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wh="urn:warehouse"><soap:Body>${body}</soap:Body></soap:Envelope>`;

const fault = (code, text) =>
  envelope(`<soap:Fault><faultcode>${code}</faultcode><faultstring>${text}</faultstring></soap:Fault>`);

const BINS = {
  1: [
    ['A-01', 8],
    ['A-02', 4],
  ],
  3: [['C-11', 40]],
  4: [['B-07', 3]],
};
const STATUS = { 1: 'A', 2: 'D', 3: 'A', 4: 'S' };

function stockLevel(itemNo, depot) {
  const id = Number(itemNo);
  const product = products[id];
  if (!product || !/^\d{7}$/.test(itemNo))
    return { status: 500, xml: fault('soap:Client', `ARTIKEL ${itemNo} UNBEKANNT`) };
  if (depot !== 'MAIN') return { status: 500, xml: fault('soap:Client', `LAGER ${depot} UNBEKANNT`) };
  if (id === 4 && process.env.WAREHOUSE_STOCKTAKING !== 'off') {
    return {
      status: 200,
      xml: envelope(
        '<wh:GetStockLevelResponse><wh:ResultCode>17</wh:ResultCode><wh:ResultText>INVENTUR IM LAGER MAIN</wh:ResultText></wh:GetStockLevelResponse>',
      ),
    };
  }
  const bins = (BINS[id] ?? []).map(
    ([bin, qty]) =>
      `<wh:Bin><wh:BinId>${bin}</wh:BinId><wh:Qty>${String(qty).padStart(4, '0')}</wh:Qty></wh:Bin>`,
  );
  return {
    status: 200,
    xml: envelope(
      `<wh:GetStockLevelResponse><wh:ResultCode>00</wh:ResultCode><wh:ItemNo>${itemNo}</wh:ItemNo>` +
        `<wh:Description>${product.name} (Größe L)</wh:Description>` +
        `<wh:QtyOnHand>${String(stock[id] ?? 0).padStart(6, '0')}</wh:QtyOnHand>` +
        `<wh:StatusCode>${STATUS[id]}</wh:StatusCode><wh:NextDelivery>20270115</wh:NextDelivery>` +
        `<wh:LastCounted>20261130143000</wh:LastCounted><wh:Bins>${bins.join('')}</wh:Bins></wh:GetStockLevelResponse>`,
    ),
  };
}

let requests = 0;
const server = createServer((req, res) => {
  requests++;
  if (req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, name, requests }));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const text = Buffer.concat(chunks).toString('latin1');
    let answer;
    if (req.method !== 'POST' || req.url !== '/StockService.asmx') {
      answer = { status: 404, xml: '<html><body><h1>404 Not Found</h1></body></html>', type: 'text/html' };
    } else if (!/GetStockLevel/.test(req.headers.soapaction ?? '')) {
      answer = { status: 500, xml: fault('soap:Client', 'SOAPACTION FEHLT') };
    } else {
      const item = /<(?:\w+:)?ItemNo>([^<]*)</.exec(text)?.[1] ?? '';
      const depot = /<(?:\w+:)?Depot>([^<]*)</.exec(text)?.[1] ?? '';
      answer = stockLevel(item, depot);
    }
    res.writeHead(answer.status, { 'content-type': `${answer.type ?? 'text/xml'}; charset=windows-1252` });
    res.end(encode(answer.xml));
  });
});
server.listen(Number(values.port ?? 0), '127.0.0.1', () => {
  console.log(`${name} (legacy SOAP) listening on 127.0.0.1:${server.address().port}`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
