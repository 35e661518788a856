#!/usr/bin/python3
"""Checks docs/schemas against the C validator.

1. The committed docs/schemas/<type>.json equal what schema_tool generates
   from the C declarations (regenerate: cmake --build build --target
   tally-schemas-update), and no committed schema is stale.
2. Every schema is a valid draft 2020-12 schema.
3. Every example in docs/schemas/examples/<type>.valid.json passes both the
   C validator (handler_validate) and python3-jsonschema; every example in
   <type>.invalid.json fails both. Each job type needs both files.
   <type>.beyond-schema.json (optional) holds payloads that break a rule JSON
   Schema cannot express (a sum, uniqueness of a field across items, a
   calendar date): the C validator must reject each, JSON Schema accepts it,
   and the schema's descriptions state the rule.

Schemas that the C side does not generate (envelope.json, written by the
worker engineer) are checked for 2 and against their own examples with
python3-jsonschema only.

Numbers are parsed with parse_float=Decimal: JSON Schema calls 1999.0 an
integer, Tally does not (a JSON integer has no fraction), and a Decimal is
not an int to jsonschema, so both sides agree on such examples.

Usage: check_schemas.py SCHEMA_TOOL DOCS_SCHEMAS_DIR
"""
import decimal
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

NOT_GENERATED = {"envelope"}


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_float=decimal.Decimal)


def main():
    tool, docs = sys.argv[1], sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([tool, "generate", tmp], check=True)
        generated = sorted(n[:-5] for n in os.listdir(tmp) if n.endswith(".json"))
        if not generated:
            failures.append("schema_tool generated nothing")
        for t in generated:
            with open(os.path.join(tmp, t + ".json"), "rb") as f:
                want = f.read()
            committed = os.path.join(docs, t + ".json")
            if not os.path.exists(committed):
                failures.append(f"{t}: docs/schemas/{t}.json is missing (regenerate)")
                continue
            with open(committed, "rb") as f:
                if f.read() != want:
                    failures.append(f"{t}: docs/schemas/{t}.json differs from the C declaration (regenerate)")
    committed = sorted(n[:-5] for n in os.listdir(docs) if n.endswith(".json"))
    for t in committed:
        if t not in generated and t not in NOT_GENERATED:
            failures.append(f"{t}: docs/schemas/{t}.json has no job type (stale)")

    checked = 0
    for t in committed:
        schema = load(os.path.join(docs, t + ".json"))
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.exceptions.SchemaError as e:
            failures.append(f"{t}: not a valid draft 2020-12 schema: {e.message}")
            continue
        validator = jsonschema.Draft202012Validator(schema)
        for kind in ("valid", "invalid", "beyond-schema"):
            path = os.path.join(docs, "examples", f"{t}.{kind}.json")
            if not os.path.exists(path):
                if t in generated and kind != "beyond-schema":
                    failures.append(f"{t}: examples/{t}.{kind}.json is missing")
                continue
            examples = load(path)
            if not isinstance(examples, list) or not examples:
                failures.append(f"{t}: examples/{t}.{kind}.json must be a non-empty array")
                continue
            c_verdicts = [None] * len(examples)
            if t in generated:
                out = subprocess.run([tool, "validate", t, path], check=True,
                                     capture_output=True, text=True).stdout
                c_verdicts = [json.loads(line) for line in out.splitlines()]
                if len(c_verdicts) != len(examples):
                    failures.append(f"{t}: schema_tool judged {len(c_verdicts)} of {len(examples)} examples")
                    continue
            for i, (ex, c) in enumerate(zip(examples, c_verdicts)):
                py_errors = [e.message for e in validator.iter_errors(ex)]
                py_valid = not py_errors
                want = kind == "valid"
                want_py = kind != "invalid"
                where = f"{t}.{kind}[{i}] {json.dumps(ex, default=str)[:120]}"
                if py_valid != want_py:
                    failures.append(f"{where}: jsonschema says {'valid' if py_valid else py_errors[0]}")
                if c is not None and c["valid"] != want:
                    failures.append(f"{where}: C validator says {'valid' if c['valid'] else c['field'] + ': ' + c['message']}")
                checked += 1

    for f in failures:
        print("FAIL", f)
    print(f"{len(committed)} schemas, {checked} examples checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
