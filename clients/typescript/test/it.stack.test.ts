// The client against a real tally-worker, PostgreSQL and the embedded broker
// (th-stack): every job type through call(), results checked against
// docs/schemas/results/; error results as TallyResultError; call timeouts;
// results() deduping a replayed result and committing only after the loop
// body; trace context on the wire. Waits are bounded and generous: the
// machine may be loaded, and nothing here asserts a duration.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import kafkajs from 'kafkajs';
import {
  JOB_TYPES,
  TallyClient,
  TallyResultError,
  TallyTimeoutError,
  validate,
  type JobType,
  type OkResult,
  type TallyResult,
} from '../src/index.js';
import { SCHEMAS_DIR } from './paths.js';
import { startStack, type Stack } from './stack.js';

const CALL_TIMEOUT_MS = 90_000;
const TEST_TIMEOUT_MS = 300_000;
const TEST_CONSUMER = { sessionTimeout: 6000, heartbeatInterval: 1500, maxWaitTimeInMs: 20 };

let stack: Stack;
let client: TallyClient;
let failed = false;
const seenTypes = new Set<JobType>();

before(async () => {
  stack = await startStack();
  client = new TallyClient({ brokers: stack.bootstrap, clientId: 'it-stack', callTimeoutMs: CALL_TIMEOUT_MS, consumer: TEST_CONSUMER });
});

after(async () => {
  await client?.close();
  await stack?.stop(failed);
});

// A test that records its failure, so th-stack keeps and prints the logs.
function it(name: string, fn: (t: TestContext) => Promise<void>): void {
  test(name, { timeout: TEST_TIMEOUT_MS }, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      failed = true;
      throw e;
    }
  });
}

const objects = JSON.parse(readFileSync(join(SCHEMAS_DIR, 'results', 'objects.json'), 'utf8')) as { $defs: object };
function checkResultSchema(r: OkResult): void {
  const text = readFileSync(join(SCHEMAS_DIR, 'results', `${r.type}.json`), 'utf8').replaceAll('objects.json#/$defs/', '#/$defs/');
  const schema = { ...JSON.parse(text), $defs: objects.$defs };
  const issue = validate(schema, r.result);
  assert.equal(issue, null, `${r.type}'s result does not match docs/schemas/results/${r.type}.json: ${issue?.message}\n${JSON.stringify(r.result)}`);
}

async function ok<T extends JobType>(accountId: string, type: T, payload: Parameters<TallyClient['call']>[2], opts = {}): Promise<OkResult<T>> {
  const r = await client.call(accountId, type, payload as never, opts);
  assert.equal(r.status, 'ok');
  assert.equal(r.account_id, accountId);
  assert.equal(r.type, type);
  checkResultSchema(r);
  seenTypes.add(type);
  return r as OkResult<T>;
}

async function refused(promise: Promise<unknown>, code: string, field?: string): Promise<TallyResultError> {
  const e = await promise.then(
    () => assert.fail(`expected an error result ${code}`),
    (err: unknown) => err,
  );
  assert.ok(e instanceof TallyResultError, `not a TallyResultError: ${String(e)}`);
  assert.equal(e.code, code, e.message);
  assert.equal(e.field, field, e.message);
  assert.equal(e.result.status, 'error');
  return e;
}

it('every job type through call(), each result as docs/schemas/results/ says', async () => {
  const a = 'acct_ts_every';
  await ok(a, 'settings.update', { statement_descriptor: 'TS CLIENT', min_payout_amount: 500 });
  assert.equal((await ok(a, 'settings.get', {})).result.settings.min_payout_amount, 500);
  const p1 = await ok(a, 'payment.record', { external_id: 'pi_ts_1', amount: 1999n, currency: 'usd', metadata: { order: '1' } });
  assert.equal(p1.result.payment.amount, 1999);
  assert.equal(typeof p1.result.payment.amount, 'number');
  const p2 = await ok(a, 'payment.record', { external_id: 'pi_ts_2', amount: 5000, currency: 'usd', status: 'pending' });
  const p3 = await ok(a, 'payment.record', { external_id: 'pi_ts_3', amount: 12000, currency: 'usd' });
  const up = await ok(a, 'payment.update_status', { payment_id: p2.result.payment.id, status: 'succeeded' });
  assert.equal(up.result.payment.status, 'succeeded');
  const alloc = await ok(a, 'share.allocate', {
    payment_id: p3.result.payment.id,
    shares: [{ party: 'platform', basis_points: 3333 }, { party: 'seller', basis_points: 3333 }, { party: 'agent', basis_points: 3334 }],
  });
  assert.equal(alloc.result.allocations.reduce((s, x) => s + x.amount, 0), 12000);
  const refund = await ok(a, 'payment.refund', { payment_id: p3.result.payment.id, amount: 1200 });
  assert.equal(refund.result.refund.amount, 1200);
  await ok(a, 'payment.get', { payment_id: p1.result.payment.id });
  const route = await ok(a, 'route.upsert', { kind: 'bank_account', destination: 'ba_ts', currency: 'usd', is_default: true });
  const route2 = await ok(a, 'route.upsert', { kind: 'stripe_connect', destination: 'acct_ts_connect' });
  await ok(a, 'route.get', { route_id: route.result.route.id });
  const code = await ok(a, 'code.create', { code: 'TS-CLIENT-1', amount: 500, currency: 'usd', max_redemptions: 2 });
  const redeemed = await ok(a, 'code.redeem', { code: code.result.code.code, redeemer: 'cust_1' });
  assert.equal(redeemed.result.code.redeemed_count, 1);
  await ok(a, 'code.get', { code: 'TS-CLIENT-1' });
  const generated = await ok(a, 'code.create', {});
  await ok(a, 'code.revoke', { code: generated.result.code.code });
  await ok(a, 'agent.link', { agent_id: 'agent_ts', role: 'reseller', share_basis_points: 1500 });
  await ok(a, 'agent.link', { agent_id: 'agent_ts_2' });
  await ok(a, 'agent.unlink', { agent_id: 'agent_ts_2' });
  const balance = await ok(a, 'balance.get', { currency: 'usd' });
  assert.ok((balance.result.data[0]?.available ?? 0) >= 5000);
  const payout = await ok(a, 'payout.create', { amount: 5000, currency: 'usd', description: 'TS payout' });
  assert.equal(payout.result.payout.route_id, route.result.route.id);
  await ok(a, 'payout.update_status', { payout_id: payout.result.payout.id, status: 'paid' });
  await ok(a, 'payout.get', { payout_id: payout.result.payout.id });
  const deleted = await ok(a, 'route.delete', { route_id: route2.result.route.id });
  assert.equal(deleted.result.deleted, true);
  const page = await ok(a, 'payment.list', { limit: 2 });
  assert.equal(page.result.data.length, 2);
  assert.equal(page.result.has_more, true);
  await ok(a, 'payment.list', { limit: 2, starting_after: page.result.data[1]!.id });
  await ok(a, 'share.list', { payment_id: p3.result.payment.id });
  await ok(a, 'payout.list', {});
  await ok(a, 'route.list', {});
  await ok(a, 'code.list', {});
  await ok(a, 'agent.list', {});
  await ok(a, 'audit.list', { limit: 5 });
  assert.deepEqual([...JOB_TYPES].filter((t) => !seenTypes.has(t)), [], 'job types never called');
});

it('calls of several accounts at once each get their own result', async () => {
  const accounts = Array.from({ length: 8 }, (_, i) => `acct_ts_many_${i}`);
  const results = await Promise.all(
    accounts.map((a, i) => ok(a, 'payment.record', { external_id: 'pi_same', amount: 100 + i, currency: 'eur' })),
  );
  results.forEach((r, i) => {
    assert.equal(r.account_id, accounts[i]);
    assert.equal(r.result.payment.amount, 100 + i);
  });
});

it('error results reject with TallyResultError: code, message, field', async () => {
  const a = 'acct_ts_errors';
  await refused(client.call(a, 'payment.get', { payment_id: 'pay_missing' }), 'not_found', 'payment_id');
  await ok(a, 'payment.record', { external_id: 'pi_dup', amount: 700, currency: 'usd' });
  const dup = await refused(client.call(a, 'payment.record', { external_id: 'pi_dup', amount: 700, currency: 'usd' }), 'conflict', 'external_id');
  assert.match(dup.message, /external_id/);
  // A rule JSON Schema cannot state, so only the worker refuses it.
  const p = await ok(a, 'payment.record', { external_id: 'pi_shares', amount: 1000, currency: 'usd' });
  await refused(
    client.call(a, 'share.allocate', { payment_id: p.result.payment.id, shares: [{ party: 'x', basis_points: 5000 }] }),
    'invalid_request',
    'shares',
  );
  await refused(client.call(a, 'payout.create', { amount: 10_000_000, currency: 'usd' }), 'insufficient_funds', 'amount');
  // The same id again: the stored error is replayed.
  const id = 'ts-replayed-error';
  await refused(client.call(a, 'payment.get', { payment_id: 'pay_gone' }, { id }), 'not_found', 'payment_id');
  const again = await refused(client.call(a, 'payment.get', { payment_id: 'pay_gone' }, { id }), 'not_found', 'payment_id');
  assert.equal(again.result.replayed, true);
});

it('call() times out with TallyTimeoutError when no worker answers', async () => {
  const lonely = new TallyClient({ brokers: stack.bootstrap, requestTopic: 'tally.ts.nobody', consumer: TEST_CONSUMER });
  try {
    const e = await lonely.call('acct_ts_timeout', 'settings.get', {}, { id: 'ts-timeout-1', timeoutMs: 2000 }).then(
      () => assert.fail('a result came from nowhere'),
      (err: unknown) => err,
    );
    assert.ok(e instanceof TallyTimeoutError, String(e));
    assert.equal(e.id, 'ts-timeout-1');
    assert.equal(e.accountId, 'acct_ts_timeout');
    assert.equal(e.timeoutMs, 2000);
  } finally {
    await lonely.close();
  }
});

// Results of account on the results topic, read raw (no dedupe), until stop says so.
async function rawResults(topic: string, accountId: string, stop: (all: TallyResult[]) => boolean): Promise<TallyResult[]> {
  const kafka = new kafkajs.Kafka({ brokers: stack.bootstrap.split(','), logLevel: kafkajs.logLevel.WARN });
  const consumer = kafka.consumer({ groupId: `it-raw-${Date.now()}-${Math.random()}`, ...TEST_CONSUMER });
  const { parseResult } = await import('../src/result.js');
  const all: TallyResult[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw read of ${topic} did not finish`)), CALL_TIMEOUT_MS);
      void consumer.run({
        eachMessage: async ({ message }) => {
          const r = parseResult(message);
          if (r.account_id !== accountId) return;
          all.push(r);
          if (stop(all)) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
  } finally {
    await consumer.disconnect();
  }
  return all;
}

it('results() drops a replayed result of the same (account_id, id)', async () => {
  const a = 'acct_ts_dedupe';
  const payload = { external_id: 'pi_replay', amount: 4200, currency: 'usd' } as const;
  await client.send(a, 'payment.record', payload, { id: 'ts-dup-1' });
  await client.send(a, 'payment.record', payload, { id: 'ts-dup-1' }); // answered again, replayed: true
  await client.send(a, 'settings.get', {}, { id: 'ts-dup-marker' });

  const raw = await rawResults(client.resultTopic, a, (all) => all.some((r) => r.id === 'ts-dup-marker'));
  assert.deepEqual(raw.map((r) => [r.id, r.replayed]), [['ts-dup-1', false], ['ts-dup-1', true], ['ts-dup-marker', false]]);

  const got: string[] = [];
  const stream = client.results({ groupId: 'it-dedupe', fromBeginning: true });
  for await (const r of stream) {
    if (r.account_id !== a) continue;
    got.push(r.id);
    if (r.id === 'ts-dup-marker') break;
  }
  assert.deepEqual(got, ['ts-dup-1', 'ts-dup-marker']);
});

it('results() commits an offset only after the loop body finished', async () => {
  const a = 'acct_ts_commit';
  for (const id of ['ts-c-1', 'ts-c-2', 'ts-c-3']) await client.send(a, 'settings.get', {}, { id });
  const group = 'it-commit';
  // Runs one stream of the group over account a's results: body gets each,
  // and says whether to go on ('next'), to stop with the current result
  // uncommitted ('break') or committed ('commit-and-break').
  async function consume(body: (r: TallyResult) => 'next' | 'break' | 'commit-and-break'): Promise<string[]> {
    const ids: string[] = [];
    const stream = client.results({ groupId: group, fromBeginning: true });
    try {
      for await (const r of stream) {
        if (r.account_id !== a) continue;
        ids.push(r.id);
        const what = body(r);
        if (what === 'commit-and-break') await stream.close({ commitCurrent: true });
        if (what !== 'next') break;
      }
    } finally {
      await stream.close();
    }
    return ids;
  }
  // A body that throws: ts-c-1 stays uncommitted.
  await assert.rejects(consume(() => { throw new Error('handler failed'); }), /handler failed/);
  // Redelivered; its body finishes (the loop asks for ts-c-2): committed. ts-c-2's loop breaks: not.
  assert.deepEqual(await consume((r) => (r.id === 'ts-c-2' ? 'break' : 'next')), ['ts-c-1', 'ts-c-2']);
  assert.deepEqual(await consume(() => 'commit-and-break'), ['ts-c-2']);
  assert.deepEqual(await consume(() => 'break'), ['ts-c-3']);
});

it('trace context goes out as headers and comes back on the result (CONTRACT.md §7)', async () => {
  const trace = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'tally=ts' };
  const r = await ok('acct_ts_trace', 'settings.get', {}, { id: 'ts-trace-1', trace });
  const kafka = new kafkajs.Kafka({ brokers: stack.bootstrap.split(','), logLevel: kafkajs.logLevel.WARN });
  const consumer = kafka.consumer({ groupId: `it-trace-${Date.now()}`, ...TEST_CONSUMER });
  const headers = await new Promise<Record<string, string>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the request was not found on the request topic')), CALL_TIMEOUT_MS);
    void (async () => {
      await consumer.connect();
      await consumer.subscribe({ topic: client.requestTopic, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          if (message.key?.toString() !== 'acct_ts_trace' || !message.value?.toString().includes('"ts-trace-1"')) return;
          clearTimeout(timer);
          resolve(Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])));
        },
      });
    })().catch(reject);
  });
  await consumer.disconnect();
  assert.equal(headers.traceparent, trace.traceparent);
  assert.equal(headers.tracestate, trace.tracestate);
  // The worker copies both onto the result (and its audit event and any DLQ copy).
  assert.deepEqual(r.trace, trace);
});
