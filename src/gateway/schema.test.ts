import { describe, expect, it } from 'vitest';
import { ConfigError } from '../core/config.js';
import { parseGatewayConfig } from './gateway.js';

function problems(text: string): string[] {
  try {
    parseGatewayConfig(text, 'gateway.yaml', {});
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message.split('\n');
  }
  throw new Error('expected the file to be refused');
}

const services = `services:
  catalog: { upstreams: [http://127.0.0.1:3001] }
`;

describe('gateway file validation', () => {
  it('accepts a minimal file and fills defaults', () => {
    const cfg = parseGatewayConfig(
      `${services}routes:\n  - match: { pathPrefix: /api }\n    proxy: { service: catalog }\n`,
      'gateway.yaml',
      {},
    );
    expect(cfg.listen).toMatchObject({ host: '0.0.0.0', port: 8080, maxHeaderSize: 16384 });
    expect(cfg.admin).toEqual({ host: '127.0.0.1', port: 9901, enabled: true, peers: [] });
    expect(cfg.routes[0]).toMatchObject({ match: { pathPrefix: '/api', priority: 0 }, middlewares: [] });
  });

  it('names an unknown service with line, column and a suggestion', () => {
    const text = `${services}routes:\n  - match: { path: /a }\n    proxy: { service: catalg }\n`;
    expect(problems(text)).toEqual([
      'gateway.yaml:5:23 routes[0].proxy.service: unknown service "catalg" (did you mean "catalog"?): define it under services:',
    ]);
  });

  it('names an unknown middleware', () => {
    const text = `${services}routes:\n  - match: { path: /a }\n    middlewares: [auht]\n    proxy: { service: catalog }\n`;
    expect(problems(text)).toEqual([
      'gateway.yaml:5:19 routes[0].middlewares[0]: unknown middleware "auht": define it under middlewares:',
    ]);
  });

  it('refuses an unknown option with a suggestion', () => {
    const text = `${services}routes:\n  - match: { path: /a }\n    proxy: { service: catalog, stripPrefx: /a }\n`;
    expect(problems(text)).toEqual([
      'gateway.yaml:5:32 routes[0].proxy.stripPrefx: unknown option "stripPrefx" (did you mean "stripPrefix"?)',
    ]);
  });

  it('requires exactly one handler', () => {
    expect(problems(`${services}routes:\n  - match: { path: /a }\n`)).toEqual([
      'gateway.yaml:4:5 routes[0]: a route needs one handler: add one of proxy, respond, aggregate, translate, static, strangler',
    ]);
    expect(
      problems(
        `${services}routes:\n  - match: { path: /a }\n    proxy: { service: catalog }\n    respond: {}\n`,
      ),
    ).toEqual([
      'gateway.yaml:4:5 routes[0]: a route has exactly one handler, this one has proxy and respond',
    ]);
  });

  it('explains a bad path pattern', () => {
    expect(problems(`routes:\n  - match: { path: /a/x*y }\n    respond: {}\n`)).toEqual([
      'gateway.yaml:2:20 routes[0].match.path: path "/a/x*y" "*" must be a whole segment, like /static/*',
    ]);
  });

  it('refuses path together with pathPrefix, and a bad host', () => {
    expect(
      problems(`routes:\n  - match: { path: /a, pathPrefix: /b, host: "a b" }\n    respond: {}\n`),
    ).toEqual([
      // In reading order: line, then column.
      'gateway.yaml:2:36 routes[0].match.pathPrefix: use either path or pathPrefix, not both',
      'gateway.yaml:2:46 routes[0].match.host: write a host name like api.example.com or a wildcard like *.example.com (no port)',
    ]);
  });

  it('checks frontends: their routes, middlewares and that they are reachable', () => {
    const text = `${services}frontends:\n  web:\n    middlewares: [nope]\n    routes:\n      - proxy: { service: catalog }\n`;
    expect(problems(text)).toEqual([
      'gateway.yaml:5:5 frontends.web: a frontend needs its own listen, or a host or pathPrefix on the main listener',
      'gateway.yaml:5:19 frontends.web.middlewares[0]: unknown middleware "nope": define it under middlewares:',
    ]);
  });

  it('refuses a malformed trusted proxy', () => {
    expect(problems(`trustedProxies: [10.0.0.0/8, nonsense]\n`)).toEqual([
      'gateway.yaml:1:30 trustedProxies[1]: "nonsense" is not an IP address or CIDR range like 10.0.0.0/8',
    ]);
  });

  it('builds middlewares from the registry: unknown type gets a suggestion, one type per entry', () => {
    expect(problems('middlewares:\n  limit: { rateLimt: { points: 10, per: 1s } }\n')).toEqual([
      'gateway.yaml:2:12 middlewares.limit.rateLimt: unknown option "rateLimt" (did you mean "rateLimit"?)',
    ]);
    expect(problems('middlewares:\n  nothing: {}\n')[0]).toMatch(
      /^gateway\.yaml:2:12 middlewares\.nothing: a middleware needs its type: one of .*rateLimit/,
    );
  });

  it('an unknown handler key gets a suggestion and no second message', () => {
    expect(problems('routes:\n  - match: { path: /a }\n    respnd: { body: x }\n')).toEqual([
      'gateway.yaml:3:5 routes[0].respnd: unknown option "respnd" (did you mean "respond"?)',
    ]);
  });

  it('refuses what cannot run: a port used twice, frontends alike, duplicate route names', () => {
    expect(
      problems(`listen: { port: 8080 }
admin: { port: 8080 }
frontends:
  web: { pathPrefix: /web, routes: [ { name: r, respond: {} }, { name: r, respond: {} } ] }
  web2: { pathPrefix: /web/ }
  a: { listen: { port: 9000 } }
  b: { listen: { port: 9000 } }
  c: { listen: { port: 0 } }
  d: { listen: { port: 0 } }
`),
    ).toEqual([
      'gateway.yaml:2:16 admin.port: port 8080 is already used by listen.port: give each listener its own port (listen.port is at line 1)',
      'gateway.yaml:4:72 frontends.web.routes[1].name: route name "r" is already used by frontends.web.routes[0]: give each route its own name (their metrics and logs would merge) (frontends.web.routes[0].name is at line 4)',
      'gateway.yaml:5:23 frontends.web2.pathPrefix: frontend "web2" selects the same requests as frontend "web" (pathPrefix /web): give each frontend its own pathPrefix or host (frontends.web.pathPrefix is at line 4)',
      'gateway.yaml:7:24 frontends.b.listen.port: port 9000 is already used by frontends.a.listen.port: give each listener its own port (frontends.a.listen.port is at line 6)',
    ]);
  });

  it('lets listeners share a port on different addresses and frontends share a prefix on different hosts', () => {
    expect(() =>
      parseGatewayConfig(
        `listen: { port: 8080, host: 127.0.0.1 }
admin: { port: 8080, host: 127.0.0.2 }
frontends:
  web: { pathPrefix: /app, host: web.example.com }
  mobile: { pathPrefix: /app, host: m.example.com }
routes:
  - { name: same, respond: {} }
`,
        'gateway.yaml',
        {},
      ),
    ).not.toThrow();
  });
});
