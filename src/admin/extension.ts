import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isTrellisError, messageOf, TrellisError } from '../core/errors.js';
import { ACTION_NAME, type AdminAction, type AdminPanel, type PanelView } from './panels.js';

/** A panel's `view()` that takes longer than this is shown as an error, so one slow part never stalls the page. */
const VIEW_TIMEOUT_MS = 1_000;
/** How long a peer's `/admin/panels` may take before it is shown as unreachable. */
const PEER_TIMEOUT_MS = 1_500;
/** Action bodies are small commands, never payloads. */
const MAX_ACTION_BODY = 64 * 1024;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/** This process's panels, each viewed with a deadline; a failing view becomes the panel's `error`. */
export async function localPanels(panels: readonly AdminPanel[], origin: string): Promise<PanelView[]> {
  return Promise.all(
    panels.map(async (p): Promise<PanelView> => {
      const head = { kind: p.kind, id: p.id, title: p.title, origin };
      try {
        return {
          ...head,
          data: await withTimeout(Promise.resolve(p.view()), VIEW_TIMEOUT_MS, `panel ${p.id}`),
        };
      } catch (err) {
        return { ...head, error: messageOf(err) };
      }
    }),
  );
}

export interface PeerStatus {
  url: string;
  ok: boolean;
  panels: number;
  error?: string;
}

/**
 * The panels of other processes' admin listeners (`admin.peers`), fetched server-side so the
 * page stays same-origin under its CSP. Peers are asked with `?local=1`, so two processes that
 * name each other never loop.
 */
export async function peerPanels(
  peers: readonly string[],
): Promise<{ panels: PanelView[]; peers: PeerStatus[] }> {
  const results = await Promise.all(
    peers.map(async (url): Promise<{ panels: PanelView[]; status: PeerStatus }> => {
      try {
        const res = await fetch(new URL('/admin/panels?local=1', url), {
          signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
        });
        if (!res.ok) throw new Error(`answered ${res.status}`);
        const body = (await res.json()) as { panels?: PanelView[] };
        const panels = (Array.isArray(body.panels) ? body.panels : []).map((p) => ({ ...p, origin: url }));
        return { panels, status: { url, ok: true, panels: panels.length } };
      } catch (err) {
        return { panels: [], status: { url, ok: false, panels: 0, error: messageOf(err) } };
      }
    }),
  );
  return { panels: results.flatMap((r) => r.panels), peers: results.map((r) => r.status) };
}

/** Constant-time check of `Authorization: Bearer <token>`. */
function bearerMatches(req: IncomingMessage, token: string): boolean {
  const header = req.headers.authorization ?? '';
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  if (!match) return false;
  const given = Buffer.from(match[1]!);
  const expected = Buffer.from(token);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_ACTION_BODY) {
      throw new TrellisError(
        'TRELLIS_E_ADMIN_ACTION_INVALID',
        `the body is larger than ${MAX_ACTION_BODY} bytes`,
        {
          status: 413,
        },
      );
    }
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  if (type !== 'application/json') {
    throw new TrellisError(
      'TRELLIS_E_ADMIN_ACTION_INVALID',
      `send the action's options as JSON with content-type: application/json (got ${type || 'none'})`,
      { status: 415 },
    );
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_ADMIN_ACTION_INVALID',
      `the body is not valid JSON: ${messageOf(err)}`,
      {
        status: 400,
      },
    );
  }
}

/**
 * `POST /admin/actions/<name>`: refused unless `admin.token` is set and presented as a bearer
 * token; the author recorded by the action is `X-Trellis-Author` (or `admin`).
 */
export async function runAction(
  req: IncomingMessage,
  name: string,
  actions: readonly AdminAction[],
  token: string | undefined,
): Promise<unknown> {
  if (token === undefined || token === '') {
    throw new TrellisError(
      'TRELLIS_E_ADMIN_ACTIONS_DISABLED',
      'admin actions are off: set admin.token in the file (for example token: ${TRELLIS_ADMIN_TOKEN}) and send it as Authorization: Bearer <token>',
      { status: 403 },
    );
  }
  if (!bearerMatches(req, token)) {
    throw new TrellisError(
      'TRELLIS_E_ADMIN_UNAUTHORIZED',
      'send the admin token from admin.token as Authorization: Bearer <token>',
      { status: 401 },
    );
  }
  const action = ACTION_NAME.test(name) ? actions.find((a) => a.name === name) : undefined;
  if (action === undefined) {
    const known = actions.map((a) => a.name).join(', ') || 'none';
    throw new TrellisError(
      'TRELLIS_E_ADMIN_ACTION_UNKNOWN',
      `no action named "${name}" here; actions: ${known}`,
      {
        status: 404,
      },
    );
  }
  const body = await readJson(req);
  const authorHeader = req.headers['x-trellis-author'];
  const author =
    typeof authorHeader === 'string' && authorHeader.trim() !== ''
      ? authorHeader.trim().slice(0, 128)
      : 'admin';
  try {
    return await action.run(body, { author });
  } catch (err) {
    if (isTrellisError(err)) throw err;
    throw new TrellisError('TRELLIS_E_ADMIN_ACTION_FAILED', `action ${name} failed: ${messageOf(err)}`, {
      status: 500,
      cause: err,
    });
  }
}
