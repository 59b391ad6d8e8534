import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** File paths of a throwaway PKI made with openssl, for TLS tests. */
export interface TestPki {
  dir: string;
  ca: string;
  /** Issue a certificate (server or client) signed by the test CA; returns its cert and key paths. */
  issue(
    name: string,
    /** `expired`: valid on 1 January 2020 only (an expired certificate, for load-time checks). */
    opts: { cn: string; dns?: string[]; ips?: string[]; client?: boolean; expired?: boolean },
  ): { cert: string; key: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** A test CA in a fresh temporary folder (EC P-256 keys: fast to make). */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-pki-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-days',
      '2',
      '-subj',
      '/CN=Trellis Test CA',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    issue(name, opts) {
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
      openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${opts.cn}`, '-out', `${name}.csr`], dir);
      const ext = [
        opts.client ? 'extendedKeyUsage=clientAuth' : 'extendedKeyUsage=serverAuth',
        ...(opts.dns?.length || opts.ips?.length
          ? [
              `subjectAltName=${[...(opts.dns ?? []).map((d) => `DNS:${d}`), ...(opts.ips ?? []).map((ip) => `IP:${ip}`)].join(',')}`,
            ]
          : []),
      ].join('\n');
      writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
      if (opts.expired === true) {
        // `x509 -days` cannot go back in time; `openssl ca` takes explicit dates.
        writeFileSync(
          join(dir, `${name}.cnf`),
          `[ca]\ndefault_ca=d\n[d]\ndatabase=${name}.index\nnew_certs_dir=.\nserial=${name}.serial\ndefault_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n`,
        );
        writeFileSync(join(dir, `${name}.index`), '');
        writeFileSync(join(dir, `${name}.serial`), '01\n');
        openssl(
          [
            'ca',
            '-batch',
            '-config',
            `${name}.cnf`,
            '-cert',
            'ca.pem',
            '-keyfile',
            'ca.key',
            '-in',
            `${name}.csr`,
          ]
            .concat(['-out', `${name}.pem`, '-startdate', '20200101000000Z', '-enddate', '20200102000000Z'])
            .concat(['-notext', '-extfile', `${name}.ext`]),
          dir,
        );
        return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
      }
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
        ].concat(['-extfile', `${name}.ext`, '-out', `${name}.pem`]),
        dir,
      );
      return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
    },
  };
}
