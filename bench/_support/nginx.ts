/**
 * nginx as a benchmark peer or origin: our own config in the run's temporary folder, in the
 * foreground (`daemon off`), one process (`master_process off`, so pinning covers all of it),
 * never the system service.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchProcess, benchDir, startProcess, waitForPort } from './process.js';

/**
 * Starts nginx with `http` block contents `httpBody`, listening on `port`. `workers` > 1 runs a
 * master with that many worker processes (the pid is the master's; CPU is read over its tree).
 */
export async function startNginx(
  name: string,
  port: number,
  httpBody: string,
  cpu?: number | string,
  workers = 1,
): Promise<BenchProcess> {
  const prefix = join(benchDir(), name);
  mkdirSync(join(prefix, 'logs'), { recursive: true });
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process ${workers > 1 ? 'on' : 'off'};
worker_processes ${workers};
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs/error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(prefix, 'body')};
  proxy_temp_path ${join(prefix, 'proxy')};
  fastcgi_temp_path ${join(prefix, 'fastcgi')};
  uwsgi_temp_path ${join(prefix, 'uwsgi')};
  scgi_temp_path ${join(prefix, 'scgi')};
  keepalive_requests 1000000;
  keepalive_timeout 65s;
${httpBody}
}
`,
  );
  const proc = startProcess(name, 'nginx', ['-p', prefix, '-c', conf], { cpu });
  await waitForPort(port, 10_000, proc);
  return proc;
}

/** An origin answering every request with a fixed small JSON body. */
export function originConfig(port: number, body: string): string {
  return `  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type application/json;
      return 200 '${body.replace(/'/g, "\\'")}';
    }
  }`;
}

/** A reverse proxy to `upstreamPort` with keep-alive upstream connections, as nginx is run in production. */
export function proxyConfig(port: number, upstreamPort: number, accessLog?: string): string {
  return `  upstream origin {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    ${accessLog ? `access_log ${accessLog};` : ''}
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }`;
}
