// envelope — a request as it goes on the wire (CONTRACT.md §2): checks the
// envelope fields and the payload the way the worker would, so a request the
// worker would refuse is refused here with the same code and field, and writes
// the message: key = account_id, value = the envelope's JSON, trace headers.
import { randomBytes } from 'node:crypto';
import { JOB_TYPES, PAYLOAD_SCHEMAS, type JobType } from './generated/jobs.js';
import { TallyValidationError } from './errors.js';
import { JsonValueError, stringifyJson } from './json.js';
import type { SendOptions, TraceContext } from './types.js';
import { validate } from './validate.js';

export const ENVELOPE_VERSION = 1;
export const MAX_MESSAGE_BYTES = 1024 * 1024;

const ACCOUNT_ID = /^[A-Za-z0-9_-]{1,64}$/;
const REQUEST_ID = /^[ -~]{1,128}$/;
const TOPIC = /^(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}$/;
const TRACEPARENT = /^[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$/;
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A new request id: `req_` and 26 Crockford base32 characters (48-bit milliseconds, 80 random bits), sortable by time. */
export function newRequestId(now = Date.now()): string {
  let bits = (BigInt(now) << 80n) | BigInt(`0x${randomBytes(10).toString('hex')}`);
  let out = '';
  for (let i = 0; i < 26; i++) {
    out = CROCKFORD[Number(bits & 31n)] + out;
    bits >>= 5n;
  }
  return `req_${out}`;
}

/** Topics the worker refuses as reply_to (CONTRACT.md §2). */
export interface ForbiddenTopics {
  request: string;
  audit: string;
  dlq: string;
}

export interface WireMessage {
  id: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

const invalid = (field: string, message: string): TallyValidationError =>
  new TallyValidationError('invalid_request', field, message);

function checkTrace(trace: TraceContext | undefined): Record<string, string> {
  if (trace === undefined) return {};
  if (!TRACEPARENT.test(trace.traceparent))
    throw invalid('traceparent', 'traceparent must be a W3C trace context header: 00-<32 hex>-<16 hex>-<2 hex>');
  const headers: Record<string, string> = { traceparent: trace.traceparent };
  if (trace.tracestate !== undefined) {
    if (!/^[ -~]{0,512}$/.test(trace.tracestate))
      throw invalid('tracestate', 'tracestate must be at most 512 printable ASCII characters');
    headers.tracestate = trace.tracestate;
  }
  return headers;
}

/** Checks everything the worker would and returns the message; throws TallyValidationError. */
export function buildRequest(
  accountId: string,
  type: string,
  payload: unknown,
  opts: SendOptions,
  forbidden: ForbiddenTopics,
): WireMessage {
  if (typeof accountId !== 'string' || !ACCOUNT_ID.test(accountId))
    throw invalid('account_id', 'account_id must be 1 to 64 characters of [A-Za-z0-9_-]');
  const id = opts.id ?? newRequestId();
  if (typeof id !== 'string' || !REQUEST_ID.test(id))
    throw invalid('id', 'id must be 1 to 128 printable ASCII characters');
  if (!(JOB_TYPES as readonly string[]).includes(type))
    throw new TallyValidationError('unknown_type', 'type', `type ${JSON.stringify(type)} is not a known job type`);
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload))
    throw invalid('payload', 'payload must be an object');
  const issue = validate(PAYLOAD_SCHEMAS[type as JobType] as never, payload);
  if (issue !== null) throw invalid(issue.field, issue.message);

  const envelope: Record<string, unknown> = { v: ENVELOPE_VERSION, id, account_id: accountId, type, payload };
  if (opts.replyTo !== undefined) {
    const t = opts.replyTo;
    if (typeof t !== 'string' || !TOPIC.test(t))
      throw invalid('reply_to', 'reply_to must be a topic name: 1 to 249 characters of [A-Za-z0-9._-]');
    if (t === forbidden.request || t === forbidden.audit || t === forbidden.dlq)
      throw invalid('reply_to', `reply_to may not name Tally's own topic ${t}`);
    envelope.reply_to = t;
  }
  if (opts.correlationId !== undefined) {
    const c = opts.correlationId;
    if (typeof c !== 'string' || [...c].length > 128 || c.includes('\u0000'))
      throw invalid('correlation_id', 'correlation_id must be a string of at most 128 characters without NUL');
    envelope.correlation_id = c;
  }
  const headers = checkTrace(opts.trace);

  let value: string;
  try {
    value = stringifyJson(envelope);
  } catch (e) {
    if (e instanceof JsonValueError) throw invalid(e.path.replace(/^payload\.?/, '') || 'payload', e.message.replace(/^payload\./, ''));
    throw e;
  }
  if (Buffer.byteLength(value) > MAX_MESSAGE_BYTES)
    throw invalid('payload', `the request is ${Buffer.byteLength(value)} bytes; at most ${MAX_MESSAGE_BYTES} are taken`);
  return { id, key: accountId, value, headers };
}
