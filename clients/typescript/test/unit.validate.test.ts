// The client's payload check agrees with the worker's on docs/schemas/examples:
// valid ones pass, invalid ones fail on the same field as the C validator
// (schema_tool, given by SCHEMA_TOOL); beyond-schema ones (rules JSON Schema
// cannot state) pass, or fail on the worker's field where the client can tell
// (a date that does not exist).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { JOB_TYPES, PAYLOAD_SCHEMAS, parseJson, validate } from '../src/index.js';
import { SCHEMAS_DIR } from './paths.js';

const examples = (type: string, kind: string): { text: string; items: unknown[] } | null => {
  const file = join(SCHEMAS_DIR, 'examples', `${type}.${kind}.json`);
  if (!existsSync(file)) return null;
  const text = readFileSync(file, 'utf8');
  return { text, items: parseJson(text, { keepFloats: true }) as unknown[] };
};

const check = (type: string, payload: unknown) => validate(PAYLOAD_SCHEMAS[type as keyof typeof PAYLOAD_SCHEMAS] as never, payload);

test('valid examples pass', () => {
  let n = 0;
  for (const type of JOB_TYPES) {
    for (const [i, p] of (examples(type, 'valid')?.items ?? []).entries()) {
      assert.equal(check(type, p), null, `${type}.valid.json[${i}]`);
      n++;
    }
  }
  assert.ok(n >= JOB_TYPES.length, `only ${n} examples`);
});

test('invalid examples fail on the field the worker names', (t) => {
  const tool = process.env.SCHEMA_TOOL;
  let compared = 0;
  for (const type of JOB_TYPES) {
    for (const kind of ['invalid', 'beyond-schema']) {
      const ex = examples(type, kind);
      if (ex === null) continue;
      let worker: { valid: boolean; field?: string }[] | null = null;
      if (tool) {
        const out = spawnSync(tool, ['validate', type, join(SCHEMAS_DIR, 'examples', `${type}.${kind}.json`)], { encoding: 'utf8' });
        assert.equal(out.status, 0, out.stderr);
        worker = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
      }
      ex.items.forEach((p, i) => {
        const where = `${type}.${kind}.json[${i}]`;
        const issue = check(type, p);
        if (kind === 'invalid') assert.notEqual(issue, null, `${where} passed`);
        if (worker !== null && issue !== null) {
          assert.equal(worker[i]?.valid, false, `${where}: the worker takes it`);
          assert.equal(issue.field, worker[i]?.field, `${where}: ${issue.message}`);
          compared++;
        }
      });
    }
  }
  if (tool) assert.ok(compared > 100, `only ${compared} fields compared`);
  else t.diagnostic('SCHEMA_TOOL is not set: fields not compared with the worker (ctest sets it)');
});

test('integers: bigint and safe numbers pass, fractions and unsafe numbers do not', () => {
  const schema = PAYLOAD_SCHEMAS['payment.record'] as never;
  const base = { external_id: 'pi_1', currency: 'usd' };
  assert.equal(validate(schema, { ...base, amount: 1999 }), null);
  assert.equal(validate(schema, { ...base, amount: 1999n }), null);
  assert.equal(validate(schema, { ...base, amount: 1000000000000000n }), null);
  assert.equal(validate(schema, { ...base, amount: 1000000000000001n })?.message, 'amount must be between 1 and 1000000000000000');
  assert.equal(validate(schema, { ...base, amount: 19.99 })?.message, 'amount must be an integer');
  assert.match(validate(schema, { ...base, amount: 2 ** 60 })?.message ?? '', /beyond Number.MAX_SAFE_INTEGER.*bigint/);
  assert.equal(validate(schema, { ...base, amount: '1999' })?.message, 'amount must be an integer');
  assert.deepEqual(validate(schema, { ...base, amount: 1, tip: 1 }), { field: 'tip', message: 'tip is not a known field' });
  assert.equal(validate(schema, { ...base, amount: 1, status: undefined }), null, 'undefined counts as absent');
});

test('a keyword the validator does not know throws instead of passing', () => {
  assert.throws(() => validate({ type: 'string', if: {} }, 'x'), /unsupported JSON Schema keyword "if"/);
});

test('code points, not UTF-16 units, are counted', () => {
  const schema = { type: 'string', maxLength: 3 };
  assert.equal(validate(schema, '😀😀😀'), null);
  assert.notEqual(validate(schema, '😀😀😀😀'), null);
});
