import type { ServerResponse } from 'node:http';
import type { RequestContext } from './types.js';

export interface Problem {
  status: number;
  /** A TRELLIS_E_* code. */
  code: string;
  /** Short, stable summary of the problem type (defaults to the HTTP reason phrase). */
  title?: string;
  /** What went wrong for this request and what to do. Never upstream internals. */
  detail?: string;
  /** Extra members (RFC 9457 extensions). */
  extensions?: Record<string, unknown>;
  headers?: Record<string, string | string[]>;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

/** The RFC 9457 body for a problem. */
export function problemBody(problem: Problem, requestId?: string): string {
  return JSON.stringify({
    type: `https://trellis.dev/errors/${problem.code}`,
    title: problem.title ?? TITLES[problem.status] ?? 'Error',
    status: problem.status,
    ...(problem.detail === undefined ? {} : { detail: problem.detail }),
    code: problem.code,
    ...(requestId === undefined ? {} : { requestId }),
    ...problem.extensions,
  });
}

/** Answers with `application/problem+json`. Does nothing if the response has already started. */
export function sendProblem(target: RequestContext | ServerResponse, problem: Problem): void {
  const res = 'res' in target ? target.res : target;
  const requestId = 'res' in target ? target.requestId : undefined;
  if (res.headersSent) {
    // Too late for a status: cut the response so the client sees it broken, not complete.
    res.destroy();
    return;
  }
  const body = problemBody(problem, requestId);
  const headers: Record<string, string | string[] | number> = {
    ...problem.headers,
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  res.writeHead(problem.status, headers);
  res.end(body);
}
