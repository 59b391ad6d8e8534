import { z } from 'zod';
import { duration, size } from '../core/units.js';
import { checkFormat, formatFields } from './formats/index.js';
import { mappingSchema, tablesSchema } from './mapping.js';

/**
 * The `translate:` declaration, shared by the route handler, `trellis acl test` and `trellis
 * acl record`. Either mappings (`toLegacy` + `fromLegacy`, each a field mapping or a JSONata
 * `expression`) or a code `module` exporting a translator.
 */

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

/** A JSON Schema, inline or as a file path relative to the configuration file. */
export const contractSchema = z.union([z.string().min(1), z.record(z.string(), z.unknown()), z.boolean()]);

/** One direction: a field mapping, or a JSONata expression producing the whole body. */
const directionSchema = z.union([
  z.strictObject({ expression: z.string().min(1) }),
  mappingSchema.refine((m) => !('expression' in m), {
    message: 'write either expression: "..." alone or field mappings',
  }),
]);

/** What a legacy fault becomes for the modern client. */
const faultAnswerSchema = z.strictObject({
  status: z.number().int().min(400).max(599),
  /** A stable, modern name for the fault (`unknown-sku`), sent as the problem's `fault` member. */
  fault: z.string().min(1).optional(),
  /** The problem's detail: what happened, in the modern API's words. */
  detail: z.string().optional(),
});

export const translateSchema = z
  .strictObject({
    /** The legacy service, from the file's `services:`. */
    service: z.string().min(1),
    /** The modern request's contract (JSON Schema of its body). */
    request: z
      .strictObject({
        contract: contractSchema.optional(),
        /** Largest modern request body read. */
        maxBodySize: size().default(1024 * 1024),
      })
      .default({ maxBodySize: 1024 * 1024 }),
    legacy: z
      .strictObject({
        ...formatFields,
        method: z.enum(METHODS).default('POST'),
        /** Path template: `/StockService.asmx`, `/stock/{sku}`, `/orders?id={body.orderId}`. */
        path: z.string().startsWith('/', 'must start with "/"'),
        /** Extra request headers (constants). */
        headers: z.record(z.string(), z.string()).default({}),
        /** JSON Schema of the decoded legacy answer (for SOAP: the content of Body). */
        contract: contractSchema.optional(),
        /** Largest legacy answer read; a larger one is refused, never buffered whole. */
        maxBodySize: size().default(4 * 1024 * 1024),
        /** Deadline of the legacy call, retries included. */
        timeout: duration().default(10_000),
        /** Faults inside a successful answer: the answer is a fault when the value at `path` is not one of `ok`. */
        faultWhen: z
          .strictObject({
            path: z.string().min(1),
            ok: z.array(z.string()).min(1),
            /** Where the fault's message is (for the log). */
            message: z.string().optional(),
          })
          .optional(),
      })
      .superRefine(checkFormat),
    /** Code tables for `lookup:` (legacy code -> modern value). */
    tables: tablesSchema.default({}),
    toLegacy: directionSchema.optional(),
    fromLegacy: directionSchema.optional(),
    /** A JS module exporting `toLegacy` and `fromLegacy` (or a default `defineTranslator({...})`). */
    module: z.string().min(1).optional(),
    /** The modern answer: its status and contract (checks the translation's own output). */
    response: z
      .strictObject({
        status: z.number().int().min(200).max(299).default(200),
        contract: contractSchema.optional(),
      })
      .default({ status: 200 }),
    /** Legacy fault code (SOAP faultcode, the `faultWhen` value, or `http:STATUS`) -> modern answer. */
    faults: z.record(z.string(), faultAnswerSchema).default({}),
    /** Limits of JSONata expressions. */
    expressionLimits: z
      .strictObject({
        timeout: duration().default(200),
        maxDepth: z.number().int().min(1).default(500),
        maxLength: z.number().int().min(1).default(1_000_000),
      })
      .default({ timeout: 200, maxDepth: 500, maxLength: 1_000_000 }),
    /** Field names whose values are replaced by `[redacted]` in logs and recordings. */
    redact: z.array(z.string().min(1)).default([]),
  })
  .superRefine((t, ctx) => {
    const mapped = t.toLegacy !== undefined || t.fromLegacy !== undefined;
    if (t.module !== undefined && mapped) {
      ctx.addIssue({
        code: 'custom',
        path: ['module'],
        message: 'use either module or toLegacy/fromLegacy, not both',
      });
    }
    if (t.module === undefined && (t.toLegacy === undefined || t.fromLegacy === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [t.toLegacy === undefined ? 'toLegacy' : 'fromLegacy'],
        message: 'a translation needs both toLegacy and fromLegacy (or a module)',
      });
    }
  });

export type TranslateOptions = z.output<typeof translateSchema>;
export type TranslateInput = z.input<typeof translateSchema>;
