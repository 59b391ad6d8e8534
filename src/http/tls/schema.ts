import { z } from 'zod';

const pair = {
  /** PEM certificate chain file (relative to the configuration file). */
  cert: z.string().min(1),
  /** PEM private key file. */
  key: z.string().min(1),
};

/** `listen.tls`: serve HTTPS. */
export const tlsSchema = z
  .strictObject({
    /** The default certificate (also used when a client sends no or an unknown SNI name). */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** More certificates, chosen by SNI; names default to the certificate's DNS subjectAltNames. */
    certificates: z
      .array(z.strictObject({ ...pair, serverNames: z.array(z.string().min(1)).min(1).optional() }))
      .default([]),
    /** Oldest TLS version accepted; never below 1.2. */
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
    /** CA bundle for client certificates: turns on mutual TLS. */
    clientCa: z.string().min(1).optional(),
    /** With `clientCa`: refuse the handshake without a valid client certificate (false: optional). */
    requireClientCert: z.boolean().default(true),
    /** Header carrying the verified client identity upstream; any copy the client sends is removed. */
    clientCertHeader: z
      .string()
      .regex(/^[A-Za-z0-9-]+$/)
      .default('x-client-cert'),
    /** Watch the certificate files and swap changed ones in without a restart. */
    reload: z.boolean().default(true),
    /** Also listen for plain HTTP on this port and redirect everything to HTTPS (308). */
    redirectHttp: z
      .strictObject({ port: z.number().int().min(0).max(65535), host: z.string().optional() })
      .optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.cert === undefined) !== (t.key === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give both cert and key, or neither' });
    }
    if (t.cert === undefined && t.certificates.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'give cert and key, or at least one entry in certificates' });
    }
  });

export type TlsConfig = z.output<typeof tlsSchema>;
