// The generated types are not stale: src/generated/jobs.ts equals what
// scripts/gen-types.mjs makes from docs/schemas/ now.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { JOB_TYPES } from '../src/index.js';
import { PACKAGE_DIR, SCHEMAS_DIR } from './paths.js';

interface Generator {
  generate(dir?: string): string;
  OUTPUT_FILE: string;
}
const gen = (await import(pathToFileURL(join(PACKAGE_DIR, 'scripts/gen-types.mjs')).href)) as Generator;

test('src/generated/jobs.ts is what docs/schemas/ generates (else: npm run generate)', () => {
  const committed = readFileSync(gen.OUTPUT_FILE, 'utf8');
  const fresh = gen.generate(SCHEMAS_DIR);
  assert.ok(committed === fresh, 'src/generated/jobs.ts is stale: run `npm run generate` in clients/typescript');
});

test('every job type has a payload schema and a result schema', () => {
  const files = JOB_TYPES.map((t) => [join(SCHEMAS_DIR, `${t}.json`), join(SCHEMAS_DIR, 'results', `${t}.json`)]);
  for (const [payload, result] of files) {
    assert.doesNotThrow(() => readFileSync(payload as string), `missing ${payload}`);
    assert.doesNotThrow(() => readFileSync(result as string), `missing ${result}`);
  }
});

test('a schema change makes the staleness check fail; an unknown keyword stops the generator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tally-gen-'));
  try {
    cpSync(SCHEMAS_DIR, dir, { recursive: true });
    const file = join(dir, 'payment.record.json');
    const schema = JSON.parse(readFileSync(file, 'utf8'));
    // What the ISO 4217 change may do: the currency becomes an enum.
    schema.properties.currency = { type: 'string', enum: ['eur', 'usd'] };
    writeFileSync(file, JSON.stringify(schema));
    const text = gen.generate(dir);
    assert.notEqual(text, readFileSync(gen.OUTPUT_FILE, 'utf8'));
    assert.match(text, /currency: "eur" \| "usd";/);

    schema.properties.currency = { type: 'string', if: { const: 'usd' }, then: {} };
    writeFileSync(file, JSON.stringify(schema));
    assert.throws(() => gen.generate(dir), /payment\.record\.json.*unsupported JSON Schema keyword "if"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
