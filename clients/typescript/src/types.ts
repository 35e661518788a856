// types — the messages of the contract that are not per job type: a result
// (CONTRACT.md §3), its trace context (§7), and the send options.
import type { JobType, Results } from './generated/jobs.js';
import type { TallyErrorCode } from './errors.js';

/** W3C trace context (CONTRACT.md §7): sent as Kafka headers, copied by the worker onto the result. */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

interface ResultBase<T extends JobType> {
  v: 1;
  id: string;
  account_id: string;
  type: T;
  /** Present iff the request had one. */
  correlation_id?: string;
  /** true when this is the stored answer of an earlier delivery of the same request. */
  replayed: boolean;
  processed_at: string;
  /** The Kafka headers of the result message (tally-account-id, tally-status, traceparent, …). */
  headers: Record<string, string>;
  /** The result's trace context, when it carries one. */
  trace?: TraceContext;
}

export interface OkResult<T extends JobType = JobType> extends ResultBase<T> {
  status: 'ok';
  result: Results[T];
}

export interface ErrorResult<T extends JobType = JobType> extends ResultBase<T> {
  status: 'error';
  error: { code: TallyErrorCode; message: string; field?: string };
}

/** One result message, parsed. Integers are numbers (the contract keeps them within ±(2^53 − 1)). */
export type TallyResult<T extends JobType = JobType> = OkResult<T> | ErrorResult<T>;

export interface SendOptions {
  /** The idempotency key; default: a new `req_…` id. Send again with the same id to retry safely. */
  id?: string;
  /** Topic for the result; default: none (the worker's results topic). call() sets its reply topic. */
  replyTo?: string;
  /** Echoed in the result; at most 128 characters. */
  correlationId?: string;
  /** The caller's trace context, sent as `traceparent` / `tracestate` headers. */
  trace?: TraceContext;
}

export interface CallOptions extends Omit<SendOptions, 'replyTo'> {
  /** How long to wait for the result; default the client's callTimeoutMs. */
  timeoutMs?: number;
}
