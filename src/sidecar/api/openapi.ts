/**
 * The platform API's OpenAPI 3.1 document, served at /v1/openapi.json so an app in any language
 * can generate a client. Kept beside the handlers in server.ts; server.test.ts checks that every
 * path here answers.
 */

const problem = { $ref: '#/components/responses/Problem' };
const key = (name: string, description: string) => ({
  name,
  in: 'path',
  required: true,
  schema: { type: 'string' },
  description,
});
const lease = { $ref: '#/components/schemas/Lease' };

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Trellis sidecar platform API',
    version: '1',
    description:
      'State, pub/sub, locks, configuration and secrets on localhost. Every call but this document needs `Authorization: Bearer $TRELLIS_SIDECAR_TOKEN`. Errors are RFC 9457 problem+json; 503 (with Retry-After) means the store is unavailable right now.',
  },
  servers: [
    {
      url: '{TRELLIS_SIDECAR_URL}',
      variables: { TRELLIS_SIDECAR_URL: { default: 'http://127.0.0.1:3500' } },
    },
  ],
  security: [{ bearer: [] }],
  paths: {
    '/v1/healthz': {
      get: {
        summary: "The app's state as the sidecar sees it",
        responses: { 200: { description: '{ app: starting|healthy|unhealthy|restarting|stopping }' } },
      },
    },
    '/v1/state/{key}': {
      parameters: [key('key', 'Any text up to 1024 characters (slashes allowed)')],
      get: {
        summary: 'Read a value',
        responses: {
          200: {
            description: 'The JSON value; ETag is its revision',
            headers: { ETag: { schema: { type: 'string' } } },
          },
          404: problem,
          503: problem,
        },
      },
      put: {
        summary: 'Write a value (If-Match: "<revision>" compare-and-set; If-None-Match: * create only)',
        requestBody: { required: true, content: { 'application/json': { schema: {} } } },
        responses: {
          200: { description: '{ key, revision }' },
          400: problem,
          412: problem,
          503: problem,
        },
      },
      delete: {
        summary: 'Delete a value (If-Match honoured)',
        responses: { 204: { description: 'Deleted' }, 404: problem, 412: problem, 503: problem },
      },
    },
    '/v1/state/bulk': {
      post: {
        summary: 'Read many keys in one call: { keys: [...] } (at most 1000)',
        requestBody: { required: true, content: { 'application/json': { schema: {} } } },
        responses: {
          200: {
            description: '{ items: [{ key, value, revision }] } in the order asked; null for a missing key',
          },
          400: problem,
          503: problem,
        },
      },
    },
    '/v1/state/bulk-put': {
      post: {
        summary:
          'Write many keys in one call: { items: [{ key, value, ifMatch? }] } (at most 1000); each write succeeds or fails alone',
        requestBody: { required: true, content: { 'application/json': { schema: {} } } },
        responses: {
          200: { description: '{ items: [{ key, revision } | { key, status: 412|400, code, detail }] }' },
          400: problem,
          503: problem,
        },
      },
    },
    '/v1/publish/{topic}': {
      parameters: [key('topic', 'Topic name')],
      post: {
        summary:
          'Publish the body as one message (Idempotency-Key de-duplicates; X-Trellis-Key is the ordering key)',
        requestBody: { required: true, content: { '*/*': { schema: {} } } },
        responses: { 202: { description: '{ id, duplicate }' }, 400: problem, 413: problem, 503: problem },
      },
    },
    '/v1/locks/{name}': {
      parameters: [key('name', 'Lock name: letters, digits, _ . : -')],
      get: {
        summary: 'The current lease',
        responses: {
          200: { description: 'Lease', content: { 'application/json': { schema: lease } } },
          404: problem,
        },
      },
      post: {
        summary: 'Acquire (or extend when the same holder holds it): { holder?, ttlMs? }',
        responses: {
          200: {
            description: 'Lease with its fencing token',
            content: { 'application/json': { schema: lease } },
          },
          409: problem,
          503: problem,
        },
      },
      put: {
        summary: 'Renew: { token, holder?, ttlMs? }',
        responses: {
          200: { description: 'Lease', content: { 'application/json': { schema: lease } } },
          409: problem,
          503: problem,
        },
      },
      delete: {
        summary: 'Release: ?token=N[&holder=H]',
        parameters: [{ name: 'token', in: 'query', required: true, schema: { type: 'integer' } }],
        responses: { 204: { description: 'Released' }, 404: problem },
      },
    },
    '/v1/config/{key}': {
      parameters: [key('key', 'Configuration document key')],
      get: {
        summary:
          'The document (secrets resolved); ?watch or Accept: text/event-stream streams it and every change',
        responses: {
          200: { description: '{ key, value, revision, source: store|last-known-good, stale? }' },
          404: problem,
        },
      },
    },
    '/v1/secrets/{name}': {
      parameters: [key('name', 'A name under secrets: in the sidecar file')],
      get: {
        summary: 'The resolved secret',
        responses: { 200: { description: '{ name, value }' }, 404: problem },
      },
    },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Lease: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          holder: { type: 'string' },
          token: {
            type: 'integer',
            description: 'Fencing token: larger than every earlier one for this name',
          },
          expiresAt: { type: 'integer', description: 'Epoch ms' },
        },
      },
    },
    responses: {
      Problem: {
        description: 'RFC 9457 problem',
        content: { 'application/problem+json': { schema: { type: 'object' } } },
      },
    },
  },
} as const;
