// Integers stay integers: out as integer literals (bigint too), in without rounding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JsonFloat, JsonValueError, parseJson, stringifyJson } from '../src/index.js';

test('integers are written as integer literals; a bigint too', () => {
  assert.equal(stringifyJson({ amount: 1999 }), '{"amount":1999}');
  assert.equal(stringifyJson({ amount: 1999n }), '{"amount":1999}');
  assert.equal(stringifyJson({ a: 12345678901234567890n }), '{"a":12345678901234567890}');
  assert.equal(stringifyJson([-0, 1e15, Number.MAX_SAFE_INTEGER]), `[0,1000000000000000,${Number.MAX_SAFE_INTEGER}]`);
  assert.equal(stringifyJson({ s: 'é"\n', n: null, b: false, skip: undefined }), '{"s":"é\\"\\n","n":null,"b":false}');
  assert.equal(stringifyJson(new JsonFloat('1999.0')), '1999.0');
});

test('numbers JSON cannot hold exactly are refused, naming the path', () => {
  for (const [value, path] of [
    [{ amount: 2 ** 53 }, 'amount'],
    [{ shares: [{ bp: 1e21 }] }, 'shares[0].bp'],
    [{ x: NaN }, 'x'],
    [{ x: Infinity }, 'x'],
  ] as const) {
    assert.throws(() => stringifyJson(value), (e: unknown) => e instanceof JsonValueError && e.path === path);
  }
  assert.throws(() => stringifyJson({ f: () => 1 }), JsonValueError);
});

test('parsing keeps integers beyond 2^53 exact as bigint', () => {
  const v = parseJson('{"small":1999,"big":9007199254740993,"neg":-9007199254740993,"f":1.5,"s":"12345678901234567"}') as Record<string, unknown>;
  assert.equal(v.small, 1999);
  assert.equal(v.big, 9007199254740993n);
  assert.equal(v.neg, -9007199254740993n);
  assert.equal(v.f, 1.5);
  assert.equal(v.s, '12345678901234567');
  assert.deepEqual(parseJson('[9007199254740991, {"a": [true, null]}]'), [9007199254740991, { a: [true, null] }]);
});

test('keepFloats keeps 1999.0 and 1e3 as written', () => {
  const v = parseJson('{"a":1999.0,"b":1e3,"c":7}', { keepFloats: true }) as Record<string, unknown>;
  assert.ok(v.a instanceof JsonFloat && v.a.source === '1999.0');
  assert.ok(v.b instanceof JsonFloat && v.b.source === '1e3');
  assert.equal(v.c, 7);
});

test('malformed JSON is a SyntaxError; __proto__ is an ordinary key', () => {
  for (const bad of ['{"a":1,}', '[1 2]', '{"a" 1}', '"open', '01', '{"a":1} x']) {
    assert.throws(() => parseJson(bad, { keepFloats: true }), SyntaxError, bad);
  }
  const v = parseJson('{"__proto__":{"polluted":1}}', { keepFloats: true }) as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.keys(v), ['__proto__']);
});
