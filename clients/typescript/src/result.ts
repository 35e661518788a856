// result — a result message off the wire (CONTRACT.md §3) into a TallyResult.
import { parseJson } from './json.js';
import type { TallyResult, TraceContext } from './types.js';

/** A message on a result topic that is not a result (not JSON, no id or account_id, no status). */
export class TallyMalformedResultError extends Error {
  override name = 'TallyMalformedResultError';
  readonly code = 'malformed_result';
}

export interface RawMessage {
  value: Buffer | null;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

function headerMap(raw: RawMessage['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw ?? {})) {
    const last = Array.isArray(v) ? v[v.length - 1] : v;
    if (last !== undefined) out[k] = last.toString();
  }
  return out;
}

/** Parses one result message; integers beyond ±(2^53 − 1), which the contract rules out, come back as bigint, never rounded. */
export function parseResult(msg: RawMessage): TallyResult {
  if (msg.value === null) throw new TallyMalformedResultError('a result message without a value');
  let body: unknown;
  try {
    body = parseJson(msg.value.toString('utf8'));
  } catch (e) {
    throw new TallyMalformedResultError(`a result message that is not JSON: ${(e as Error).message}`);
  }
  const r = body as Record<string, unknown>;
  if (r === null || typeof r !== 'object' || typeof r.id !== 'string' || typeof r.account_id !== 'string')
    throw new TallyMalformedResultError('a result message without id or account_id');
  if (!(r.status === 'ok' && 'result' in r) && !(r.status === 'error' && typeof r.error === 'object' && r.error !== null))
    throw new TallyMalformedResultError(`result ${r.id} has neither status "ok" with a result nor "error" with an error`);
  const headers = headerMap(msg.headers);
  const out = { ...r, headers } as unknown as TallyResult;
  if (headers.traceparent !== undefined) {
    const trace: TraceContext = { traceparent: headers.traceparent };
    if (headers.tracestate !== undefined) trace.tracestate = headers.tracestate;
    out.trace = trace;
  }
  return out;
}

/** The dedupe and correlation key of a request or result: (account_id, id). */
export const resultKey = (accountId: string, id: string): string => `${accountId}\u0000${id}`;
