/**
 * `trellis/acl`: the Anti-Corruption Layer. The `translate:` route handler, the translation
 * engine behind it (also usable on its own), code translators, formats and golden tests.
 */
export { type CoercionOptions, compileCoercion } from './coerce.js';
export { type Contract, type ContractIssue, loadContract, zodContract } from './contract.js';
export { type CompiledExpression, compileExpression, type ExpressionLimits } from './expression.js';
export {
  createCodec,
  FormatError,
  type FormatOptions,
  formatOptionsSchema,
  type LegacyCodec,
  LegacyFault,
} from './formats/index.js';
export { type CaseResult, type GoldenCase, loadTranslation, recordCase, runGolden } from './golden.js';
export { translateHandler } from './handler.js';
export { compileMapping, type Mapping, MappingError, type MappingInput } from './mapping.js';
export { type TranslateInput, type TranslateOptions, translateSchema } from './schema.js';
export { createTranslation, type LegacyRequest, type Translation, TranslationError } from './translation.js';
export {
  defineTranslator,
  type LegacyAnswer,
  type LegacyCall,
  type ModernAnswer,
  type ModernRequest,
  type Translator,
} from './types.js';
