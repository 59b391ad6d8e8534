import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TrellisError, type TrellisErrorCode } from '../core/errors.js';
import { getPath, parsePath } from '../shape/paths.js';
import { compileTemplate, MissingValue, render, type Template } from '../shape/template.js';
import { type Contract, type ContractIssue, loadContract, zodContract } from './contract.js';
import { compileExpression, type ExpressionLimits } from './expression.js';
import { createCodec, FormatError, type LegacyCodec, LegacyFault } from './formats/index.js';
import { compileMapping, type Mapping, MappingError, type MappingInput } from './mapping.js';
import type { TranslateOptions } from './schema.js';
import type { LegacyAnswer, ModernAnswer, ModernRequest, Translator } from './types.js';

/**
 * A compiled translation: everything `translate:` does except the network. The route handler,
 * `trellis acl test` (golden files) and `trellis acl record` all run this same code, so a
 * translation behaves the same offline and in production.
 */

/** The legacy request, ready to send. */
export interface LegacyRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  /** The value before encoding (for golden files and logs). */
  value: unknown;
}

/**
 * Why a translation refused: `status`/`code`/`message` are what the client may see; `log`
 * holds what only the log may (the legacy system's own fault text, contract paths of its answer).
 */
export class TranslationError extends TrellisError {
  constructor(
    code: TrellisErrorCode,
    message: string,
    readonly httpStatus: number,
    readonly extensions: Record<string, unknown> = {},
    readonly log: Record<string, unknown> = {},
  ) {
    super(code, message, { status: httpStatus });
  }
}

export interface Translation {
  readonly options: TranslateOptions;
  readonly codec: LegacyCodec;
  /** Checks the modern request against its contract and builds the legacy request. */
  toLegacy(request: ModernRequest): Promise<LegacyRequest>;
  /** Reads the legacy answer (faults, contract, mapping) and builds the modern one. */
  fromLegacy(
    status: number,
    headers: Record<string, string>,
    body: Buffer,
    request: ModernRequest,
  ): Promise<ModernAnswer>;
}

export interface TranslationDeps {
  /** Folder of the configuration, for contract files and modules. */
  baseDir: string;
}

type Direction = (body: unknown, context: Record<string, unknown>) => Promise<unknown>;

function directionOf(
  spec: TranslateOptions['toLegacy'],
  direction: 'toLegacy' | 'fromLegacy',
  tables: TranslateOptions['tables'],
  limits: ExpressionLimits,
): Direction {
  if (spec !== undefined && 'expression' in spec && typeof spec.expression === 'string') {
    const expr = compileExpression(spec.expression, limits);
    return (body, context) => expr.evaluate(body, context);
  }
  const mapping: Mapping = compileMapping(spec as MappingInput, { direction, tables, limits });
  return mapping;
}

function contractOf(spec: TranslateOptions['request']['contract'], deps: TranslationDeps, what: string) {
  return spec === undefined ? undefined : loadContract(spec, deps.baseDir, what);
}

function issueLines(issues: ContractIssue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}

/** Loads a code translator module: named `toLegacy`/`fromLegacy` exports or a default translator. */
async function loadModule(
  file: string,
  baseDir: string,
): Promise<Translator & { requestContract?: Contract; legacyContract?: Contract }> {
  const url = pathToFileURL(resolve(baseDir, file)).href;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(url)) as Record<string, unknown>;
  } catch (err) {
    throw new TrellisError(
      'TRELLIS_E_ACL_MODULE',
      `cannot load the translator module ${file}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  const t = (typeof mod.toLegacy === 'function' ? mod : mod.default) as Record<string, unknown> | undefined;
  if (typeof t?.toLegacy !== 'function' || typeof t?.fromLegacy !== 'function') {
    throw new TrellisError(
      'TRELLIS_E_ACL_MODULE',
      `the translator module ${file} must export toLegacy and fromLegacy functions (or a default defineTranslator({ toLegacy, fromLegacy }))`,
    );
  }
  const zodOf = (v: unknown) =>
    v !== null && typeof v === 'object' && 'safeParse' in v
      ? zodContract(v as Parameters<typeof zodContract>[0])
      : undefined;
  const requestContract = zodOf(t.requestContract);
  const legacyContract = zodOf(t.legacyContract);
  return {
    toLegacy: t.toLegacy as Translator['toLegacy'],
    fromLegacy: t.fromLegacy as Translator['fromLegacy'],
    ...(requestContract === undefined ? {} : { requestContract }),
    ...(legacyContract === undefined ? {} : { legacyContract }),
  };
}

function compilePathTemplate(text: string): Template {
  const t = compileTemplate(text);
  if (typeof t === 'string') throw new TrellisError('TRELLIS_E_ROUTE_INVALID', `translate.legacy.path: ${t}`);
  return t;
}

/** Compiles a translation at load: codec, contracts, mappings or module, path template. */
export async function createTranslation(
  options: TranslateOptions,
  deps: TranslationDeps,
): Promise<Translation> {
  const codec = createCodec(options.legacy);
  const limits: ExpressionLimits = {
    timeoutMs: options.expressionLimits.timeout,
    maxDepth: options.expressionLimits.maxDepth,
    maxLength: options.expressionLimits.maxLength,
  };
  const module = options.module === undefined ? undefined : await loadModule(options.module, deps.baseDir);
  const requestContract =
    contractOf(options.request.contract, deps, 'translate.request.contract') ?? module?.requestContract;
  const legacyContract =
    contractOf(options.legacy.contract, deps, 'translate.legacy.contract') ?? module?.legacyContract;
  const responseContract = contractOf(options.response.contract, deps, 'translate.response.contract');
  const toLegacy =
    module === undefined ? directionOf(options.toLegacy, 'toLegacy', options.tables, limits) : undefined;
  const fromLegacy =
    module === undefined ? directionOf(options.fromLegacy, 'fromLegacy', options.tables, limits) : undefined;
  const pathTemplate = compilePathTemplate(options.legacy.path);
  const faultWhen = options.legacy.faultWhen;
  const faultPath = faultWhen === undefined ? undefined : parsePath(faultWhen.path);
  const faultMessagePath = faultWhen?.message === undefined ? undefined : parsePath(faultWhen.message);
  if (typeof faultPath === 'string' || typeof faultMessagePath === 'string') {
    throw new TrellisError(
      'TRELLIS_E_ROUTE_INVALID',
      `translate.legacy.faultWhen: ${faultPath ?? faultMessagePath}`,
    );
  }
  const bodyless = options.legacy.method === 'GET' || options.legacy.method === 'HEAD';

  const faultAnswer = (fault: LegacyFault, legacyStatus: number): never => {
    const mapped = options.faults[fault.code] ?? options.faults.default;
    const log = { legacyStatus, legacyFault: { code: fault.code, message: fault.message } };
    if (mapped === undefined) {
      throw new TranslationError(
        'TRELLIS_E_LEGACY_FAULT',
        'the legacy system reported a fault; the gateway log has it under this request id',
        502,
        {},
        log,
      );
    }
    throw new TranslationError(
      'TRELLIS_E_LEGACY_FAULT',
      mapped.detail ?? 'the legacy system refused the request',
      mapped.status,
      mapped.fault === undefined ? {} : { fault: mapped.fault },
      log,
    );
  };

  const encode = (value: unknown): Buffer | undefined => {
    if (bodyless) return undefined;
    try {
      return codec.encode(value);
    } catch (err) {
      if (err instanceof FormatError) {
        throw new TranslationError(
          'TRELLIS_E_ACL_REQUEST_INVALID',
          `the request cannot be written for the legacy system: ${err.message}`,
          422,
        );
      }
      throw err;
    }
  };

  return {
    options,
    codec,
    async toLegacy(request) {
      if (requestContract !== undefined) {
        const issues = requestContract.check(request.body);
        if (issues.length > 0) {
          throw new TranslationError(
            'TRELLIS_E_ACL_REQUEST_INVALID',
            `the request breaks its contract: ${issueLines(issues)}`,
            422,
            { errors: issues },
          );
        }
      }
      const scope = {
        params: request.params,
        query: new URLSearchParams(request.query),
        headers: request.headers,
        jwt: request.jwt,
        item: undefined,
        bodies: { body: request.body },
      };
      const path = render(pathTemplate, scope, 'path');
      if (path instanceof MissingValue) {
        throw new TranslationError(
          'TRELLIS_E_ACL_REQUEST_INVALID',
          `the legacy path needs {${path.variable}}: ${path.why}`,
          422,
          { errors: [{ path: path.variable, message: path.why }] },
        );
      }
      const headers = { ...codec.requestHeaders, ...options.legacy.headers };
      if (module !== undefined) {
        const call = await module.toLegacy(request);
        return {
          method: call.method,
          path: call.path,
          headers: { ...headers, ...call.headers },
          body: encode(call.body),
          value: call.body,
        };
      }
      const context = {
        params: request.params,
        query: request.query,
        headers: request.headers,
        jwt: request.jwt,
        method: request.method,
      };
      let value: unknown;
      try {
        value = await toLegacy!(request.body, context);
      } catch (err) {
        if (err instanceof MappingError) {
          throw new TranslationError(
            'TRELLIS_E_ACL_REQUEST_INVALID',
            `the request cannot be translated: ${err.message}`,
            422,
            {
              errors: [{ path: err.source ?? err.target, message: err.message }],
            },
          );
        }
        throw err;
      }
      return { method: options.legacy.method, path, headers, body: encode(value), value };
    },

    async fromLegacy(status, headers, bytes, request) {
      let decoded: unknown;
      try {
        decoded = codec.decode(bytes);
      } catch (err) {
        if (err instanceof LegacyFault) faultAnswer(err, status);
        if (err instanceof FormatError) {
          // An error page in HTML (or anything unreadable) with an error status is a failure of the legacy call.
          if (status >= 400) faultAnswer(new LegacyFault(`http:${status}`, err.message), status);
          throw new TranslationError(
            'TRELLIS_E_LEGACY_UNREADABLE',
            'the legacy system answered something that is not its declared format',
            502,
            {},
            { legacyStatus: status, reason: err.message },
          );
        }
        throw err;
      }
      if (status >= 400) faultAnswer(new LegacyFault(`http:${status}`, `HTTP ${status}`), status);
      if (faultPath !== undefined && faultWhen !== undefined) {
        const code = getPath(decoded, faultPath);
        const text = code === undefined || code === null ? '' : String(code).trim();
        if (!faultWhen.ok.includes(text)) {
          const message = faultMessagePath === undefined ? undefined : getPath(decoded, faultMessagePath);
          faultAnswer(
            new LegacyFault(text, message === undefined ? `fault code ${text}` : String(message)),
            status,
          );
        }
      }
      if (legacyContract !== undefined) {
        const issues = legacyContract.check(decoded);
        if (issues.length > 0) {
          throw new TranslationError(
            'TRELLIS_E_LEGACY_CONTRACT',
            'the legacy system answered in a shape its contract does not allow; the gateway log has the details',
            502,
            {},
            { legacyStatus: status, issues },
          );
        }
      }
      let answer: ModernAnswer;
      try {
        if (module !== undefined) {
          const legacy: LegacyAnswer = { status, headers, body: decoded };
          answer = await module.fromLegacy(legacy, request);
        } else {
          const context = { status, headers, request };
          answer = { status: options.response.status, body: await fromLegacy!(decoded, context) };
        }
      } catch (err) {
        if (err instanceof LegacyFault) faultAnswer(err, status);
        if (err instanceof MappingError) {
          throw new TranslationError(
            'TRELLIS_E_LEGACY_CONTRACT',
            'the legacy answer could not be translated; the gateway log has the details',
            502,
            {},
            { legacyStatus: status, issues: [{ path: err.source ?? err.target, message: err.message }] },
          );
        }
        throw err;
      }
      if (responseContract !== undefined) {
        const issues = responseContract.check(answer.body);
        if (issues.length > 0) {
          throw new TranslationError(
            'TRELLIS_E_ACL_TRANSLATION_INVALID',
            'the translated answer breaks the modern contract; the gateway log has the details',
            500,
            {},
            { issues },
          );
        }
      }
      return answer;
    },
  };
}
