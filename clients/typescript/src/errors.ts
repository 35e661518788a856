// errors — what the client throws or rejects with. Every class carries a
// stable `code`; a TallyResultError's code is the worker's (CONTRACT.md §3).
import type { ErrorResult } from './types.js';

/** Codes a result can carry (CONTRACT.md §3); new ones may appear. */
export type TallyErrorCode =
  | 'invalid_request'
  | 'unsupported_version'
  | 'unknown_type'
  | 'idempotency_conflict'
  | 'not_found'
  | 'conflict'
  | 'insufficient_funds'
  | 'internal'
  | 'account_held'
  | (string & {});

/** Refused before sending: the worker would have answered it with this code and field. */
export class TallyValidationError extends Error {
  override name = 'TallyValidationError';
  constructor(
    readonly code: 'invalid_request' | 'unknown_type',
    /** The envelope field (`account_id`, `id`, …) or the path inside the payload (`shares[1].basis_points`). */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** An error result: the worker answered the request with status "error". */
export class TallyResultError extends Error {
  override name = 'TallyResultError';
  readonly code: TallyErrorCode;
  readonly field: string | undefined;
  constructor(readonly result: ErrorResult) {
    super(result.error.message);
    this.code = result.error.code;
    this.field = result.error.field;
  }
}

/** call() saw no result for (accountId, id) within its timeout. The request may still be answered later. */
export class TallyTimeoutError extends Error {
  override name = 'TallyTimeoutError';
  readonly code = 'timeout';
  constructor(
    readonly accountId: string,
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(`no result for request ${id} of account ${accountId} within ${timeoutMs} ms`);
  }
}
