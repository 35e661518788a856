// @tally/client — a typed producer and result consumer for Tally (envelope v1).
export { TallyClient, optionsFromEnv } from './client.js';
export type { TallyClientOptions, ResultsOptions, ResultStream } from './client.js';
export { TallyValidationError, TallyResultError, TallyTimeoutError } from './errors.js';
export type { TallyErrorCode } from './errors.js';
export { TallyMalformedResultError, parseResult } from './result.js';
export { buildRequest, newRequestId, ENVELOPE_VERSION, MAX_MESSAGE_BYTES } from './envelope.js';
export { parseJson, stringifyJson, JsonFloat, JsonValueError } from './json.js';
export { validate } from './validate.js';
export type { Issue } from './validate.js';
export type { TallyResult, OkResult, ErrorResult, TraceContext, SendOptions, CallOptions } from './types.js';
export * from './generated/jobs.js';
