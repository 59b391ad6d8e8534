import { describe, expect, it } from 'vitest';
import { failureOf } from './outcome.js';

describe('failureOf', () => {
  it.each([
    ['ECONNREFUSED', 'connectFailure', 'connect'],
    ['ENOTFOUND', 'connectFailure', 'connect'],
    ['EHOSTUNREACH', 'connectFailure', 'connect'],
    ['ENETUNREACH', 'connectFailure', 'connect'],
    ['EAI_AGAIN', 'connectFailure', 'connect'],
    // The request never left: retried as a connect failure, told to the client as a timeout.
    ['UND_ERR_CONNECT_TIMEOUT', 'connectFailure', 'timeout'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout', 'timeout'],
    ['UND_ERR_BODY_TIMEOUT', 'timeout', 'timeout'],
    ['UND_ERR_SOCKET', 'reset', 'reset'],
    ['ECONNRESET', 'reset', 'reset'],
  ])('%s: outcome %s, answered as %s', (code, outcome, kind) => {
    expect(failureOf(Object.assign(new Error(code), { code }))).toEqual({ outcome, kind });
  });
});
