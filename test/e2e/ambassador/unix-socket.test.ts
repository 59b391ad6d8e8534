import { execFile } from 'node:child_process';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliProcess,
  type Origin,
  spawnCli,
  startOrigin,
  type TempDir,
  tempDir,
} from '../support/index.js';

const run = promisify(execFile);

/**
 * `listen: unix:/path.sock` through the real CLI: curl (`--unix-socket`), Python's standard
 * library (http.client over an AF_UNIX socket) and Node (`socketPath`) call the remote through
 * the socket; a stale socket file is taken over, a live one refused, the file removed on stop.
 */

// Python: an HTTPConnection whose connect() opens the Unix socket; prints status and body.
const PYTHON_CLIENT = `
import http.client, json, socket, sys
class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__('localhost')
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
c = UnixConnection(sys.argv[1])
c.request('GET', sys.argv[2])
r = c.getresponse()
print(json.dumps({"status": r.status, "body": r.read().decode()}))
`;

// Leaves a socket file nobody listens on, as a process killed before cleaning up would.
const STALE_SOCKET = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
`;

function nodeGet(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: { host: 'localhost' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('trellis ambassador: Unix socket listeners', () => {
  let dir: TempDir;
  let origin: Origin;
  let amb: CliProcess | undefined;
  let socket: string;
  let shared: string;
  let file: string;
  let started: { ports: Record<string, number>; sockets?: Record<string, string> };

  beforeAll(async () => {
    dir = tempDir();
    origin = await startOrigin('payments');
    socket = `${dir.path}/payments.sock`;
    shared = `${dir.path}/shared.sock`;
    file = `${dir.path}/ambassador.yaml`;
    writeFileSync(
      file,
      `listen: unix:${shared}
remotes:
  payments:
    listen: { path: ${socket}, mode: '0600' }
    service: { upstreams: ['${origin.url}'] }
  inventory:
    hosts: [inventory.internal]
    service: { upstreams: ['${origin.url}'] }
`,
    );
    // A stale socket file from a crashed run: nothing listens on it, so it is taken over.
    await run('python3', ['-c', STALE_SOCKET, socket]);
    expect(statSync(socket).isSocket()).toBe(true);
    amb = spawnCli(['ambassador', '-c', file, '--admin', '127.0.0.1:0']);
    started = JSON.parse(await amb.waitForOutput(/"msg":"ambassador started"/)) as typeof started;
  }, 30_000);

  afterAll(async () => {
    await amb?.stop();
    await origin?.close();
    dir?.cleanup();
  });

  it('serves curl, Python and Node over the socket, with the mode asked for', async () => {
    expect(statSync(socket).mode & 0o777).toBe(0o600);
    expect(statSync(shared).mode & 0o777).toBe(0o660);

    const curl = await run('curl', ['-s', '--unix-socket', socket, 'http://localhost/v1/charges/1']);
    const seen = JSON.parse(curl.stdout) as { origin: string; url: string; headers: Record<string, string> };
    expect(seen).toMatchObject({ origin: 'payments', url: '/v1/charges/1' });
    expect(seen.headers['x-trellis-deadline-ms']).toBeDefined();

    const python = JSON.parse((await run('python3', ['-c', PYTHON_CLIENT, socket, '/py'])).stdout) as {
      status: number;
      body: string;
    };
    expect(python.status).toBe(200);
    expect(JSON.parse(python.body)).toMatchObject({ origin: 'payments', url: '/py' });

    const node = await nodeGet(socket, '/node');
    expect(node.status).toBe(200);
    expect(JSON.parse(node.body)).toMatchObject({ url: '/node' });

    // The shared socket routes by Host like the shared TCP listener.
    const hosted = await run('curl', [
      '-s',
      '--unix-socket',
      shared,
      '-H',
      'Host: inventory.internal',
      'http://localhost/stock/7',
    ]);
    expect(JSON.parse(hosted.stdout)).toMatchObject({ url: '/stock/7' });
  }, 30_000);

  it('reports the socket listeners by their path, never as port 0', async () => {
    expect(started.sockets).toEqual({ payments: socket, main: shared });
    expect(Object.keys(started.ports)).toEqual(['admin']);
    expect(started.ports.admin).toBeGreaterThan(0);
  });

  it('refuses a socket another process is listening on, with a clear error', async () => {
    const second = spawnCli(['ambassador', '-c', file, '--admin', '127.0.0.1:0']);
    const { code } = await second.exited;
    expect(code).not.toBe(0);
    expect(second.output()).toMatch(
      /a process is listening on the Unix socket .*payments\.sock: stop it or choose another path/,
    );
    // The running one was not disturbed.
    expect((await nodeGet(socket, '/still')).status).toBe(200);
  }, 30_000);

  it("a reload that changes a socket listener's options rebinds the same path in place", async () => {
    const text = (await import('node:fs')).readFileSync(file, 'utf8');
    writeFileSync(file, text.replace("mode: '0600' }", "mode: '0640', maxHeaderSize: 8kb }"));
    await amb!.waitForOutput(/"version":2.*"msg":"configuration applied"/).catch((err: Error) => {
      throw new Error(`${err.message}\n${amb!.output().slice(-3000)}`);
    });
    expect(statSync(socket).mode & 0o777).toBe(0o640);
    expect((await nodeGet(socket, '/after-reload')).status).toBe(200);
  }, 30_000);

  it('removes its socket files on stop', async () => {
    await amb!.stop();
    amb = undefined;
    expect(existsSync(socket)).toBe(false);
    expect(existsSync(shared)).toBe(false);
  }, 30_000);
});
