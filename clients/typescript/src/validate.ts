// validate — checks a value against a JSON Schema (the keywords that
// scripts/gen-types.mjs accepts) and names the first culprit the way Tally's
// worker does: `amount`, `shares[1].basis_points`, `metadata.order`.
//
// Integers follow the contract: a number that is a safe integer or a bigint
// (compared exactly against minimum and maximum); a JsonFloat (`1999.0`) or a
// fractional number is not one. Strings are measured in code points. A keyword
// it does not know throws, so a schema it cannot judge is never half-checked.
import { JsonFloat } from './json.js';

export interface Issue {
  /** The culprit's path inside the checked value; '' is the value itself. */
  field: string;
  message: string;
}

type Schema = boolean | { [keyword: string]: unknown };

const ANNOTATIONS = new Set([
  '$schema', '$id', '$comment', 'title', 'description', 'default', 'examples',
  'deprecated', 'readOnly', 'writeOnly', '$defs',
]);

// RFC 3339 date-time; the worker also refuses dates that do not exist.
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function dateTimeOk(s: string): boolean {
  const m = DATE_TIME.exec(s);
  if (m === null) return false;
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const days = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  return mo >= 1 && mo <= 12 && d >= 1 && d <= days && h <= 23 && mi <= 59 && se <= 60;
}

const childPath = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path === '' || key === '' ? key || path : `${path}.${key}`;
const label = (path: string): string => (path === '' ? 'the value' : path);
const codePoints = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof JsonFloat) return 'number';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'integer' : 'number';
  return typeof v; // string, boolean, object, or something JSON has not
}

function typeMatches(actual: string, wanted: string): boolean {
  return actual === wanted || (wanted === 'number' && actual === 'integer');
}

const A_OR_AN = (t: string): string => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

function numeric(v: unknown): bigint | number | null {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return v;
  if (v instanceof JsonFloat) return Number(v.source);
  return null;
}

function compare(a: bigint | number, b: number): number {
  if (typeof a === 'bigint' && Number.isInteger(b)) return a < BigInt(b) ? -1 : a > BigInt(b) ? 1 : 0;
  const x = Number(a);
  return x < b ? -1 : x > b ? 1 : 0;
}

function equal(a: unknown, b: unknown): boolean {
  if (typeof a === 'bigint' || typeof b === 'bigint') {
    const x = numeric(a);
    const y = numeric(b);
    return x !== null && y !== null && BigInt(x as never) === BigInt(y as never);
  }
  if (a instanceof JsonFloat) return equal(Number(a.source), b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => equal((a as never)[k], (b as never)[k]));
  }
  return a === b;
}

/** Checks value against schema; null when it passes. root resolves `#/$defs/…` references. */
export function validate(schema: Schema, value: unknown, path = '', root: Schema = schema): Issue | null {
  if (schema === true) return null;
  if (schema === false) return { field: path, message: `${label(path)} is not allowed` };
  const s = schema;
  const issue = (message: string, field = path): Issue => ({ field, message: `${field === '' ? 'the value' : field} ${message}` });

  for (const k of Object.keys(s)) {
    if (!ANNOTATIONS.has(k) && !KNOWN.has(k)) throw new Error(`validate: unsupported JSON Schema keyword "${k}"`);
  }
  if (s.$ref !== undefined) {
    const m = /^#\/\$defs\/(.+)$/.exec(String(s.$ref));
    const defs = typeof root === 'object' ? (root.$defs as Record<string, Schema> | undefined) : undefined;
    const target = m !== null && defs !== undefined ? defs[m[1] as string] : undefined;
    if (target === undefined) throw new Error(`validate: cannot resolve $ref "${String(s.$ref)}"`);
    const r = validate(target, value, path, root);
    if (r !== null) return r;
  }

  const actual = jsonType(value);
  if (s.type !== undefined) {
    const wanted = ([] as string[]).concat(s.type as string | string[]);
    if (!wanted.some((t) => typeMatches(actual, t))) {
      const what = wanted.map(A_OR_AN).join(' or ');
      if (actual === 'number' && wanted.includes('integer')) {
        if (typeof value === 'number' && Number.isInteger(value))
          return issue('is beyond Number.MAX_SAFE_INTEGER and may have been rounded; pass a bigint');
        return issue('must be an integer');
      }
      return issue(`must be ${what}`);
    }
  }
  if (s.const !== undefined && !equal(value, s.const)) return issue(`must be ${JSON.stringify(s.const)}`);
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => equal(value, e)))
    return issue(`must be one of: ${(s.enum as unknown[]).map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).join(', ')}`);

  if (typeof value === 'string') {
    const r = checkString(s, value, issue);
    if (r !== null) return r;
  }
  const n = actual === 'integer' || actual === 'number' ? numeric(value) : null;
  if (n !== null) {
    const r = checkNumber(s, n, issue);
    if (r !== null) return r;
  }
  if (Array.isArray(value)) {
    const r = checkArray(s, value, path, root, issue);
    if (r !== null) return r;
  }
  if (actual === 'object') {
    const r = checkObject(s, value as Record<string, unknown>, path, root, issue);
    if (r !== null) return r;
  }
  return checkCombinators(s, value, path, root, issue);
}

type IssueFn = (message: string, field?: string) => Issue;

const KNOWN = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const',
  'anyOf', 'oneOf', 'allOf', 'not', '$ref',
  'minLength', 'maxLength', 'pattern', 'format',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
  'minItems', 'maxItems', 'uniqueItems', 'minProperties', 'maxProperties', 'propertyNames',
]);

function bounds(min: unknown, max: unknown, unit: string): string {
  if (min !== undefined && max !== undefined) return `${String(min)} to ${String(max)} ${unit}`;
  return min !== undefined ? `at least ${String(min)} ${unit}` : `at most ${String(max)} ${unit}`;
}

function checkString(s: Record<string, unknown>, v: string, issue: IssueFn): Issue | null {
  const len = codePoints(v);
  const min = s.minLength as number | undefined;
  const max = s.maxLength as number | undefined;
  if ((min !== undefined && len < min) || (max !== undefined && len > max))
    return issue(`must be ${bounds(min, max, 'characters')} long`);
  if (s.pattern !== undefined && !new RegExp(s.pattern as string, 'u').test(v)) {
    if (v.includes('\u0000')) return issue('must not contain NUL characters');
    return issue(`must match ${s.pattern as string}`);
  }
  if (s.format === 'date-time' && !dateTimeOk(v))
    return issue('must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z');
  return null;
}

function checkNumber(s: Record<string, unknown>, n: bigint | number, issue: IssueFn): Issue | null {
  const min = s.minimum as number | undefined;
  const max = s.maximum as number | undefined;
  if ((min !== undefined && compare(n, min) < 0) || (max !== undefined && compare(n, max) > 0)) {
    if (min !== undefined && max !== undefined) return issue(`must be between ${min} and ${max}`);
    return issue(min !== undefined ? `must be at least ${min}` : `must be at most ${String(max)}`);
  }
  const emin = s.exclusiveMinimum as number | undefined;
  const emax = s.exclusiveMaximum as number | undefined;
  if (emin !== undefined && compare(n, emin) <= 0) return issue(`must be greater than ${emin}`);
  if (emax !== undefined && compare(n, emax) >= 0) return issue(`must be less than ${emax}`);
  const step = s.multipleOf as number | undefined;
  if (step !== undefined) {
    const ok = typeof n === 'bigint' && Number.isInteger(step) ? n % BigInt(step) === 0n : Number(n) % step === 0;
    if (!ok) return issue(`must be a multiple of ${step}`);
  }
  return null;
}

function checkArray(s: Record<string, unknown>, v: unknown[], path: string, root: Schema, issue: IssueFn): Issue | null {
  const min = s.minItems as number | undefined;
  const max = s.maxItems as number | undefined;
  if ((min !== undefined && v.length < min) || (max !== undefined && v.length > max))
    return issue(`must have ${bounds(min, max, 'items')}`);
  if (s.uniqueItems === true) {
    for (let i = 1; i < v.length; i++)
      for (let j = 0; j < i; j++) if (equal(v[i], v[j])) return issue('must not repeat an item', childPath(path, i));
  }
  if (s.items !== undefined) {
    for (let i = 0; i < v.length; i++) {
      const r = validate(s.items as Schema, v[i], childPath(path, i), root);
      if (r !== null) return r;
    }
  }
  return null;
}

function checkObject(
  s: Record<string, unknown>,
  v: Record<string, unknown>,
  path: string,
  root: Schema,
  issue: IssueFn,
): Issue | null {
  // undefined stands for an absent field, as in JSON.stringify. In the
  // worker's order: the count, fields it does not know, then the declared
  // fields in their order (a missing required one where it is declared).
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  const props = (s.properties ?? {}) as Record<string, Schema>;
  const required = new Set((s.required ?? []) as string[]);
  const min = s.minProperties as number | undefined;
  const max = s.maxProperties as number | undefined;
  if ((min !== undefined && keys.length < min) || (max !== undefined && keys.length > max))
    return issue(`must have ${bounds(min, max, 'keys')}`);
  for (const k of keys) {
    if (Object.hasOwn(props, k)) continue;
    const at = childPath(path, k);
    if (s.propertyNames !== undefined) {
      const r = validate(s.propertyNames as Schema, k, at, root);
      if (r !== null) return { field: at, message: `the key ${r.message}` };
    }
    const sub = s.additionalProperties;
    if (sub === false) return issue('is not a known field', at);
    if (sub !== undefined) {
      const r = validate(sub as Schema, v[k], at, root);
      if (r !== null) return r;
    }
  }
  for (const [name, sub] of Object.entries(props)) {
    const at = childPath(path, name);
    if (!keys.includes(name)) {
      if (required.has(name)) return issue('is required', at);
      continue;
    }
    const r = validate(sub, v[name], at, root);
    if (r !== null) return r;
  }
  for (const name of required) {
    if (!Object.hasOwn(props, name) && !keys.includes(name)) return issue('is required', childPath(path, name));
  }
  return null;
}

function checkCombinators(s: Record<string, unknown>, v: unknown, path: string, root: Schema, issue: IssueFn): Issue | null {
  for (const sub of (s.allOf ?? []) as Schema[]) {
    const r = validate(sub, v, path, root);
    if (r !== null) return r;
  }
  if (s.anyOf !== undefined) {
    const results = (s.anyOf as Schema[]).map((sub) => validate(sub, v, path, root));
    if (results.every((r) => r !== null)) return results[0] ?? issue('matches none of the allowed forms');
  }
  if (s.oneOf !== undefined) {
    const passing = (s.oneOf as Schema[]).filter((sub) => validate(sub, v, path, root) === null).length;
    if (passing !== 1) return issue(passing === 0 ? 'matches none of the allowed forms' : 'matches more than one allowed form');
  }
  if (s.not !== undefined && validate(s.not as Schema, v, path, root) === null) return issue('is not allowed');
  return null;
}
