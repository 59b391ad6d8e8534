import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CliProcess, freePort, ROOT, spawnCli } from '../support/index.js';

/** The Python app of these tests (and of docs/sidecar.md). */
export const PYTHON_APP = join(ROOT, 'test/e2e/sidecar/app.py');

/** A `trellis sidecar` child with its ports. */
export interface SidecarProcess extends CliProcess {
  readonly url: string;
  readonly adminUrl: string;
  readonly ports: Record<string, number>;
}

/** Writes `yaml` (with APP_PORT replaced by a free port) and starts `trellis sidecar -c file -- command`. */
export async function startSidecarCli(
  dir: string,
  yaml: string,
  command: string[],
  env: Record<string, string> = {},
): Promise<SidecarProcess & { appPort: number; file: string }> {
  const appPort = await freePort();
  const file = join(dir, 'sidecar.yaml');
  writeFileSync(file, yaml.replaceAll('APP_PORT', String(appPort)));
  const proc = spawnCli(['sidecar', '-c', file, '--admin', '127.0.0.1:0', '--', ...command], { env });
  const line = await proc.waitForOutput(/"msg":"sidecar started"/, 30_000);
  const ports = (JSON.parse(line) as { ports: Record<string, number> }).ports;
  return {
    ...proc,
    appPort,
    file,
    ports,
    url: `http://127.0.0.1:${ports.inbound}`,
    adminUrl: `http://127.0.0.1:${ports.admin}`,
  };
}

/** The base of a sidecar file for the Python app. */
export function pythonSidecarYaml(extra = ''): string {
  return `app:
  name: py
  port: APP_PORT
  healthPath: /healthz
  healthInterval: 200ms
  backoff: { initial: 50ms, max: 500ms }
listen: { host: 127.0.0.1, port: 0 }
api: { port: 0 }
drainTimeout: 10s
${extra}`;
}
