#!/usr/bin/env node
// gen-types — writes src/generated/jobs.ts from Tally's JSON Schemas:
// docs/schemas/<type>.json (each job type's payload, generated from the C
// handlers' schema table) and docs/schemas/results/ (each type's ok result
// and the objects it carries). The output holds the request and result types,
// the list of job types and the payload schemas the client validates with.
//
//   node scripts/gen-types.mjs            rewrite src/generated/jobs.ts
//   node scripts/gen-types.mjs --check    exit 1 when the file is stale
//   --schemas DIR                         another docs/schemas directory
//
// A schema keyword this generator does not know stops it with the keyword's
// place, so a new kind of rule cannot slip into the types unnoticed.
import { readFileSync, readdirSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const PACKAGE_DIR = resolve(here, '..');
export const DEFAULT_SCHEMAS_DIR = resolve(PACKAGE_DIR, '../../docs/schemas');
export const OUTPUT_FILE = join(PACKAGE_DIR, 'src/generated/jobs.ts');

// Keywords that only annotate; they are dropped from the embedded schemas.
const ANNOTATIONS = new Set([
  '$schema', '$id', '$comment', 'title', 'description', 'default', 'examples',
  'deprecated', 'readOnly', 'writeOnly',
]);
// Keywords the types and src/validate.ts both understand.
export const SUPPORTED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const',
  'anyOf', 'oneOf', 'allOf', 'not', '$ref', '$defs',
  'minLength', 'maxLength', 'pattern', 'format',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'multipleOf',
  'minItems', 'maxItems', 'uniqueItems', 'minProperties', 'maxProperties', 'propertyNames',
]);

function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`gen-types: ${path}: ${e.message}`);
  }
}

function checkKeywords(schema, where) {
  if (typeof schema === 'boolean') return;
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema))
    throw new Error(`gen-types: ${where}: a schema must be an object or a boolean`);
  for (const [k, v] of Object.entries(schema)) {
    if (ANNOTATIONS.has(k)) continue;
    if (!SUPPORTED.has(k)) throw new Error(`gen-types: ${where}: unsupported JSON Schema keyword "${k}"`);
    if (k === 'properties' || k === '$defs')
      for (const [n, s] of Object.entries(v)) checkKeywords(s, `${where}.${k}.${n}`);
    else if (k === 'items' || k === 'additionalProperties' || k === 'propertyNames' || k === 'not')
      checkKeywords(v, `${where}.${k}`);
    else if (k === 'anyOf' || k === 'oneOf' || k === 'allOf')
      v.forEach((s, i) => checkKeywords(s, `${where}.${k}[${i}]`));
  }
}

/** The schema without annotations (what the validator needs at run time). */
function strip(schema) {
  if (Array.isArray(schema)) return schema.map(strip);
  if (schema === null || typeof schema !== 'object') return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) {
    if (ANNOTATIONS.has(k)) continue;
    if (k === 'properties' || k === '$defs')
      out[k] = Object.fromEntries(Object.entries(v).map(([n, s]) => [n, strip(s)]));
    else if (k === 'enum' || k === 'const' || k === 'required') out[k] = v;
    else out[k] = strip(v);
  }
  return out;
}

const pascal = (type) =>
  type.split(/[._-]/).map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
const propKey = (name) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name));

function docComment(schema, pad) {
  const parts = [];
  if (typeof schema === 'object' && schema !== null) {
    if (schema.description) parts.push(schema.description);
    if (schema.default !== undefined) parts.push(`@default ${JSON.stringify(schema.default)}`);
  }
  if (parts.length === 0) return '';
  const text = parts.join('\n').replace(/\*\//g, '*\\/');
  const lines = text.split('\n');
  if (lines.length === 1) return `${pad}/** ${lines[0]} */\n`;
  return `${pad}/**\n${lines.map((l) => `${pad} * ${l}`).join('\n')}\n${pad} */\n`;
}

// Long enums (ISO 4217's currencies) that several fields share become one
// named type, named after the first field that has it: `currency` → Currency.
const NAMED_ENUM_MIN = 16;
let namedEnums = new Map(); // enumKey(values) → { name, schema }
// A nullable field's enum lists null too; the named type holds the rest.
const enumKey = (values) => JSON.stringify(values.filter((v) => v !== null));
const enumValues = (values) => values.filter((v) => v !== null).map((v) => JSON.stringify(v)).join(' | ');

function collectEnums(schema, field) {
  if (schema === null || typeof schema !== 'object') return;
  if (Array.isArray(schema.enum) && schema.enum.length >= NAMED_ENUM_MIN) {
    const key = enumKey(schema.enum);
    if (!namedEnums.has(key) && field !== undefined) namedEnums.set(key, { name: pascal(field), field, schema });
  }
  for (const [k, v] of Object.entries(schema)) {
    if (k === 'properties') for (const [n, sub] of Object.entries(v)) collectEnums(sub, n);
    else if (k === 'items' || k === 'additionalProperties') collectEnums(v, field);
    else if (k === 'anyOf' || k === 'oneOf' || k === 'allOf') v.forEach((sub) => collectEnums(sub, field));
  }
}

// mode 'request': integers accept bigint too; 'result': integers are numbers.
function tsType(schema, mode, depth) {
  if (schema === true || schema === undefined) return 'unknown';
  if (schema === false) return 'never';
  if (schema.$ref !== undefined) {
    const m = /#\/\$defs\/([A-Za-z0-9_]+)$/.exec(schema.$ref);
    if (!m) throw new Error(`gen-types: unsupported $ref "${schema.$ref}" (only …#/$defs/Name)`);
    return m[1];
  }
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum !== undefined) {
    const named = namedEnums.get(enumKey(schema.enum));
    const values = named !== undefined ? named.name : enumValues(schema.enum);
    return schema.enum.includes(null) ? `${values} | null` : values;
  }
  for (const k of ['anyOf', 'oneOf']) {
    if (schema[k] !== undefined)
      return [...new Set(schema[k].map((s) => tsType(s, mode, depth)))].join(' | ');
  }
  if (schema.allOf !== undefined)
    return schema.allOf.map((s) => `(${tsType(s, mode, depth)})`).join(' & ');
  const types = schema.type === undefined ? [] : [].concat(schema.type);
  if (types.length === 0) return 'unknown';
  return types.map((t) => singleType(schema, t, mode, depth)).join(' | ');
}

function singleType(schema, type, mode, depth) {
  switch (type) {
    case 'string': return 'string';
    case 'integer': return mode === 'request' ? 'number | bigint' : 'number';
    case 'number': return 'number';
    case 'boolean': return 'boolean';
    case 'null': return 'null';
    case 'array': {
      const item = tsType(schema.items, mode, depth);
      return /[ |&]/.test(item) ? `Array<${item}>` : `${item}[]`;
    }
    case 'object': return objectType(schema, mode, depth);
    default: throw new Error(`gen-types: unknown type "${type}"`);
  }
}

function objectType(schema, mode, depth) {
  const props = Object.entries(schema.properties ?? {});
  const extra = schema.additionalProperties;
  if (props.length === 0) {
    if (extra === false) return 'Record<string, never>';
    return `{ [key: string]: ${tsType(extra === undefined ? true : extra, mode, depth)} }`;
  }
  const required = new Set(schema.required ?? []);
  const pad = '  '.repeat(depth + 1);
  let out = '{\n';
  for (const [name, sub] of props) {
    out += docComment(sub, pad);
    const opt = required.has(name) ? '' : '?';
    out += `${pad}${propKey(name)}${opt}: ${tsType(sub, mode, depth + 1)};\n`;
  }
  if (extra !== undefined && extra !== false)
    out += `${pad}[key: string]: ${tsType(extra, mode, depth + 1)} | undefined;\n`;
  return `${out}${'  '.repeat(depth)}}`;
}

function declare(name, schema, mode) {
  const body = tsType(schema, mode, 0);
  const doc = docComment(schema, '');
  return body.startsWith('{')
    ? `${doc}export interface ${name} ${body}\n`
    : `${doc}export type ${name} = ${body};\n`;
}

/** Reads the schemas under dir and returns the text of src/generated/jobs.ts. */
export function generate(dir = DEFAULT_SCHEMAS_DIR) {
  const types = readdirSync(dir)
    .filter((f) => f.endsWith('.json') && f !== 'envelope.json')
    .map((f) => f.slice(0, -5))
    .sort();
  if (types.length === 0) throw new Error(`gen-types: no <type>.json in ${dir}`);
  const resultsDir = join(dir, 'results');
  const objectsFile = join(resultsDir, 'objects.json');
  const objects = existsSync(objectsFile) ? readJson(objectsFile) : { $defs: {} };
  checkKeywords(objects, 'results/objects.json');

  let out = '// GENERATED by scripts/gen-types.mjs from docs/schemas/ — do not edit.\n';
  out += '// Regenerate with `npm run generate`; test/unit.generated.test.ts fails when stale.\n';
  out += '/* eslint-disable */\n\n';
  out += '/** Every job type of CONTRACT.md §6, in the order of their names. */\n';
  out += `export const JOB_TYPES = [\n${types.map((t) => `  ${JSON.stringify(t)},\n`).join('')}] as const;\n`;
  out += 'export type JobType = (typeof JOB_TYPES)[number];\n\n';

  out += '// ---- Objects in results (docs/schemas/results/objects.json) ----\n\n';
  for (const [name, schema] of Object.entries(objects.$defs ?? {}).sort(([a], [b]) => a.localeCompare(b)))
    out += declare(name, schema, 'result') + '\n';

  namedEnums = new Map();
  const schemas = types.map((type) => {
    const schema = readJson(join(dir, `${type}.json`));
    checkKeywords(schema, `${type}.json`);
    collectEnums(schema);
    return schema;
  });
  if (namedEnums.size > 0) out += '// ---- Value sets that several fields share ----\n\n';
  for (const { name, field, schema } of namedEnums.values()) {
    const n = schema.enum.filter((v) => v !== null).length;
    out += `/** The ${n} values of \`${field}\` in docs/schemas, for every field with that list. */\n`;
    out += `export type ${name} = ${enumValues(schema.enum)};\n\n`;
  }

  const payloads = {};
  out += '// ---- Payloads (docs/schemas/<type>.json) and ok results (docs/schemas/results/<type>.json) ----\n\n';
  for (const [i, type] of types.entries()) {
    const schema = schemas[i];
    payloads[type] = strip(schema);
    out += declare(`${pascal(type)}Request`, schema, 'request') + '\n';
    const resultFile = join(resultsDir, `${type}.json`);
    if (existsSync(resultFile)) {
      const result = readJson(resultFile);
      checkKeywords(result, `results/${type}.json`);
      out += declare(`${pascal(type)}Result`, result, 'result') + '\n';
    } else {
      out += `/** No docs/schemas/results/${type}.json: the result is not described. */\n`;
      out += `export type ${pascal(type)}Result = { [key: string]: unknown };\n\n`;
    }
  }

  out += '/** Each job type\'s payload. */\nexport interface Requests {\n';
  out += types.map((t) => `  ${JSON.stringify(t)}: ${pascal(t)}Request;\n`).join('');
  out += '}\n\n/** Each job type\'s `result` in an ok answer. */\nexport interface Results {\n';
  out += types.map((t) => `  ${JSON.stringify(t)}: ${pascal(t)}Result;\n`).join('');
  out += '}\n\n';
  out += '/** The payload schemas without annotations, for src/validate.ts. */\n';
  out += `export const PAYLOAD_SCHEMAS: Record<JobType, unknown> = ${JSON.stringify(payloads, null, 2)};\n`;
  return out;
}

function main(argv) {
  let dir = DEFAULT_SCHEMAS_DIR;
  let check = false;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--check') check = true;
    else if (argv[i] === '--schemas' && i + 1 < argv.length) dir = resolve(argv[++i]);
    else {
      process.stderr.write('usage: gen-types.mjs [--check] [--schemas DIR]\n');
      return 2;
    }
  }
  const text = generate(dir);
  if (check) {
    const current = existsSync(OUTPUT_FILE) ? readFileSync(OUTPUT_FILE, 'utf8') : '';
    if (current !== text) {
      process.stderr.write('gen-types: src/generated/jobs.ts is stale; run `npm run generate`\n');
      return 1;
    }
    return 0;
  }
  writeFileSync(OUTPUT_FILE, text);
  process.stdout.write(`gen-types: wrote ${OUTPUT_FILE}\n`);
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    process.exitCode = 1;
  }
}
