// The envelope and message send() writes (CONTRACT.md §2, §7).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildRequest, newRequestId, parseJson, TallyValidationError } from '../src/index.js';

const topics = { request: 'tally.requests', audit: 'tally.audit', dlq: 'tally.dlq' };
const record = { external_id: 'pi_1', amount: 1999, currency: 'usd' };

function refused(fn: () => unknown, code: string, field: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof TallyValidationError, String(e));
    assert.equal(e.code, code);
    assert.equal(e.field, field, e.message);
    return true;
  });
}

test('the message is keyed by account_id and carries the full envelope', () => {
  const m = buildRequest('acct_42', 'payment.record', record, { id: 'r-1', replyTo: 'billing.replies', correlationId: 'c-77' }, topics);
  assert.equal(m.key, 'acct_42');
  assert.equal(m.id, 'r-1');
  assert.equal(
    m.value,
    '{"v":1,"id":"r-1","account_id":"acct_42","type":"payment.record","payload":{"external_id":"pi_1","amount":1999,"currency":"usd"},"reply_to":"billing.replies","correlation_id":"c-77"}',
  );
  assert.deepEqual(m.headers, {});
});

test('ids are generated unless given: req_ and 26 sortable characters', () => {
  const a = buildRequest('acct_42', 'settings.get', {}, {}, topics);
  assert.match(a.id, /^req_[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(newRequestId(1000) < newRequestId(2000));
  assert.notEqual(newRequestId(), newRequestId());
});

test('a bigint amount goes out as an integer literal', () => {
  const m = buildRequest('acct_42', 'payment.record', { ...record, amount: 1999n }, { id: 'r-2' }, topics);
  assert.match(m.value, /"amount":1999,/);
  assert.deepEqual((parseJson(m.value) as { payload: unknown }).payload, record);
});

test('trace context becomes traceparent and tracestate headers', () => {
  const trace = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', tracestate: 'congo=t61rcWkgMzE' };
  const m = buildRequest('acct_42', 'settings.get', {}, { trace }, topics);
  assert.deepEqual(m.headers, trace);
  refused(() => buildRequest('acct_42', 'settings.get', {}, { trace: { traceparent: 'nope' } }, topics), 'invalid_request', 'traceparent');
});

test('what the worker would refuse is refused with its code and field', () => {
  refused(() => buildRequest('acct 42', 'settings.get', {}, {}, topics), 'invalid_request', 'account_id');
  refused(() => buildRequest('a'.repeat(65), 'settings.get', {}, {}, topics), 'invalid_request', 'account_id');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { id: '' }, topics), 'invalid_request', 'id');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { id: 'é' }, topics), 'invalid_request', 'id');
  refused(() => buildRequest('acct_42', 'payment.teleport', {}, {}, topics), 'unknown_type', 'type');
  refused(() => buildRequest('acct_42', 'settings.get', [], {}, topics), 'invalid_request', 'payload');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { replyTo: 'tally.requests' }, topics), 'invalid_request', 'reply_to');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { replyTo: 'tally.dlq' }, topics), 'invalid_request', 'reply_to');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { replyTo: 'bad topic' }, topics), 'invalid_request', 'reply_to');
  refused(() => buildRequest('acct_42', 'settings.get', {}, { correlationId: 'x'.repeat(129) }, topics), 'invalid_request', 'correlation_id');
  refused(() => buildRequest('acct_42', 'payment.record', { ...record, amount: 0 }, {}, topics), 'invalid_request', 'amount');
  refused(() => buildRequest('acct_42', 'payment.record', { ...record, amount: 2 ** 53 }, {}, topics), 'invalid_request', 'amount');
  refused(
    () => buildRequest('acct_42', 'share.allocate', { payment_id: 'pay_1', shares: [{ party: 'a', basis_points: 10000 }, { party: 'b', basis_points: 1.5 }] }, {}, topics),
    'invalid_request',
    'shares[1].basis_points',
  );
  const big = { ...record, description: 'x'.repeat(1000), metadata: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'é'.repeat(500)])) };
  assert.ok(buildRequest('acct_42', 'payment.record', big, {}, topics).value.length < 1024 * 1024);
});
