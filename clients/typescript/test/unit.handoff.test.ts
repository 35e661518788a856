// results()'s hand-over: an item counts as processed only once the loop asks
// for the next one; an item in a loop that ended is not processed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Handoff, RecentKeys } from '../src/handoff.js';

test('put resolves processed only when the next item is asked for', async () => {
  const h = new Handoff<number>();
  let outcome: string | null = null;
  const first = h.next();
  const put = h.put(1).then((o) => (outcome = o));
  assert.deepEqual(await first, { value: 1, done: false });
  await new Promise((r) => setImmediate(r));
  assert.equal(outcome, null, 'still in the loop body');
  const second = h.next();
  await put;
  assert.equal(outcome, 'processed');
  const put2 = h.put(2);
  assert.deepEqual(await second, { value: 2, done: false });
  h.close();
  assert.equal(await put2, 'closed', 'the body of item 2 never finished');
  assert.deepEqual(await h.next(), { value: undefined, done: true });
  assert.equal(await h.put(3), 'closed');
});

test('an item offered before next() waits for it', async () => {
  const h = new Handoff<string>();
  const put = h.put('a');
  assert.deepEqual(await h.next(), { value: 'a', done: false });
  const pending = h.next();
  assert.equal(await put, 'processed');
  h.close();
  assert.deepEqual(await pending, { value: undefined, done: true });
});

test('a failure rejects the waiting next()', async () => {
  const h = new Handoff<string>();
  const pending = h.next();
  h.fail(new Error('broker gone'));
  await assert.rejects(pending, /broker gone/);
  await assert.rejects(h.next(), /broker gone/);
});

test('RecentKeys forgets the oldest key beyond its capacity', () => {
  const k = new RecentKeys(3);
  for (const x of ['a', 'b', 'c']) k.add(x);
  k.add('a'); // refreshed: now the newest
  k.add('d');
  assert.equal(k.size, 3);
  assert.ok(k.has('a') && k.has('c') && k.has('d'));
  assert.ok(!k.has('b'));
  assert.throws(() => new RecentKeys(0), RangeError);
});
