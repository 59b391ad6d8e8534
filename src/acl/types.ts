/**
 * The two models an anti-corruption layer stands between. The modern side is JSON over HTTP as
 * the new service wants it; the legacy side is whatever the old system speaks (SOAP, XML, CSV,
 * fixed-width records, odd charsets). A translator turns one into the other in both directions,
 * so the legacy model never leaks into the modern service.
 */

/** A request as the modern client sent it (body already parsed as JSON). */
export interface ModernRequest {
  method: string;
  /** The normalised path. */
  path: string;
  /** Route parameters (`:sku`). */
  params: Record<string, string>;
  query: Record<string, string>;
  /** Lower-cased header names. */
  headers: Record<string, string>;
  body: unknown;
  /** Verified JWT claims, when a jwt middleware ran before. */
  jwt?: Record<string, unknown>;
}

/** The call to make to the legacy system, before its body is encoded. */
export interface LegacyCall {
  method: string;
  /** Path and query, already encoded. */
  path: string;
  headers: Record<string, string>;
  /** A value the legacy format encodes (an object tree for XML/SOAP/JSON, rows for CSV/fixed). */
  body: unknown;
}

/** What the legacy system answered, after its body was decoded by its format. */
export interface LegacyAnswer {
  status: number;
  headers: Record<string, string>;
  /** Decoded body: for SOAP the content of `Body`, for CSV the rows. */
  body: unknown;
}

/** The answer the modern client gets. */
export interface ModernAnswer {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

/**
 * A translator written in code: `toLegacy` builds the legacy call from the modern request,
 * `fromLegacy` builds the modern answer from the legacy one. Either may be async. Throwing a
 * `LegacyFault` (or returning one from `fromLegacy`) answers the client with a problem.
 */
export interface Translator {
  toLegacy(request: ModernRequest): LegacyCall | Promise<LegacyCall>;
  fromLegacy(answer: LegacyAnswer, request: ModernRequest): ModernAnswer | Promise<ModernAnswer>;
}

/** Helps a code translator keep its types: `export default defineTranslator({ toLegacy, fromLegacy })`. */
export function defineTranslator(translator: Translator): Translator {
  return translator;
}
