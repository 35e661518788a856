#!/usr/bin/python3
"""Writes the fuzz target's seed corpus and dictionary.

Seeds (one file each, in the target's input format, see fuzz_target.h):
  - every example of docs/schemas/examples: envelopes as they are, payloads
    of <type>.{valid,invalid,beyond-schema}.json wrapped in an envelope;
  - hand-made edge cases: each string, integer, array and map bound of every
    job type's published schema at, below and above the limit (ASCII and
    multi-byte characters), the envelope's own bounds, keys, versions, deep
    nesting, huge and odd numbers (-0, 1e400, 2^63), invalid UTF-8, NUL
    bytes and escapes, duplicate keys.
The dictionary holds the field names, job types, enum values and JSON tokens.

Both are generated from docs/schemas, so new job types are fuzzed without
touching this file.

Usage: make_corpus.py DOCS_SCHEMAS_DIR OUT_DIR DICT_FILE
"""
import glob
import json
import os
import shutil
import sys

RAW = {}


def raw_number(text):
    """Keeps a float literal exactly as written (1999.0, 1e400)."""
    key = "__raw%d__" % len(RAW)
    RAW[key] = text
    return key


def dumps(obj):
    s = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for key, text in RAW.items():
        s = s.replace('"%s"' % key, text)
    return s


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f, parse_float=raw_number)


def envelope(type_, payload, **extra):
    env = {"v": 1, "id": "req_seed", "account_id": "acct_seed", "type": type_, "payload": payload}
    env.update(extra)
    return env


class Corpus:
    def __init__(self, out):
        self.out = out
        self.n = 0

    def add(self, tag, value, key=None):
        """value: bytes, str or a JSON value; key: bytes or str or None."""
        if not isinstance(value, (bytes, str)):
            value = dumps(value)
        if isinstance(value, str):
            value = value.encode("utf-8")
        data = value
        if key is not None:
            if isinstance(key, str):
                key = key.encode("utf-8")
            data = b"\x01" + key + b"\x01" + value
        name = "%04d-%s" % (self.n, "".join(c if c.isalnum() or c in "._-" else "_" for c in tag))
        with open(os.path.join(self.out, name[:120]), "wb") as f:
            f.write(data)
        self.n += 1


def sample(length, unit):
    return (unit * length)[:length] if len(unit) == 1 else unit * length


def string_edges(prop):
    """Values at the string bounds of a property schema."""
    lo = prop.get("minLength", 0)
    hi = prop.get("maxLength")
    pattern = prop.get("pattern", "")
    units = ["A"] if "A-Z" in pattern else ["x", "é", "😀"]
    if "0-9" in pattern and "A-Z" not in pattern:
        units = ["1"]
    out = []
    for u in units:
        for n in sorted({lo, max(lo - 1, 0), lo + 1} | ({hi, hi + 1, hi - 1} if hi else set())):
            out.append(("len%d-%s" % (n, "ascii" if u.isascii() else "mb%d" % len(u.encode())), sample(n, u)))
    return out


def payload_edges(corpus, type_, schema, base):
    props = schema.get("properties", {})
    for name, prop in props.items():
        types = prop.get("type")
        types = types if isinstance(types, list) else [types]
        def put(tag, value):
            p = dict(base)
            p[name] = value
            corpus.add("edge-%s-%s-%s" % (type_, name, tag), envelope(type_, p))
        if "string" in types and "enum" not in prop and "format" not in prop:
            for tag, v in string_edges(prop):
                put(tag, v)
            put("nul-escape", "a\u0000b")
        if "integer" in types:
            lo, hi = prop.get("minimum", 0), prop.get("maximum", 0)
            for v in sorted({lo - 1, lo, hi, hi + 1, 0, -1, 2**63 - 1, -(2**63), 2**63, 10**20}):
                put("int%d" % v, v)
            for text in ["-0", "1.0", "1e3", "1e400", "-1e400", "0.0", "-0.0", "1E+2", "%d.5" % lo]:
                put("num%s" % text, raw_number(text))
            put("string-number", str(hi))
        if "enum" in prop:
            for v in prop["enum"]:
                if v is not None:
                    put("enum-upper", v.upper())
                    put("enum-space", v + " ")
        if prop.get("format") == "date-time":
            for v in ["2026-11-22T10:00:00Z", "2026-02-29T10:00:00Z", "2024-02-29T23:59:60.999999Z",
                      "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "2026-11-22t10:00:00z",
                      "2026-11-22T10:00:00.Z", "2026-11-22T10:00:00", "2026-13-01T00:00:00Z",
                      "2026-11-22T10:00:00+2400", "2026-04-31T00:00:00Z"]:
                put("ts-" + v, v)
        if "array" in types:
            item = {"party": "p", "basis_points": 1}
            hi = prop.get("maxItems", 1)
            for n in [0, 1, 2, hi, hi + 1]:
                items = [{"party": "p%d" % i, "basis_points": 10000 // max(n, 1)} for i in range(n)]
                if n:
                    items[0]["basis_points"] += 10000 - sum(i["basis_points"] for i in items)
                put("items%d" % n, items)
            put("dup-party", [{"party": "a", "basis_points": 5000}, {"party": "a", "basis_points": 5000}])
            put("item-extra", [dict(item, basis_points=10000, extra=1)])
            put("item-not-object", [1])
        if "object" in types:
            hi = prop.get("maxProperties", 1)
            for n in [0, hi, hi + 1]:
                put("keys%d" % n, {"k%d" % i: "v" for i in range(n)})
            put("key-empty", {"": "v"})
            put("key-long", {"k" * 41: "v"})
            put("key-mb", {"é" * 40: "v"})
            put("val-long", {"k": "é" * 501})
            put("val-number", {"k": 1})
            put("val-null", {"k": None})
    corpus.add("edge-%s-unknown-field" % type_, envelope(type_, dict(base, unknown_field=1)))
    corpus.add("edge-%s-empty" % type_, envelope(type_, {}))
    corpus.add("edge-%s-nested" % type_, '{"v":1,"id":"r","account_id":"a","type":"%s","payload":%s}'
               % (type_, dumps(dict(base))[:-1] + (',' if base else '') + '"deep":' + "[" * 1000 + "]" * 1000 + "}"))


def envelope_edges(corpus):
    base = envelope("payment.get", {"payment_id": "pay_1"})
    def put(tag, **changes):
        e = dict(base)
        for k, v in changes.items():
            if v is ...:
                e.pop(k, None)
            else:
                e[k] = v
        corpus.add("env-" + tag, e)
    for n in [0, 1, 128, 129]:
        put("id%d" % n, id="i" * n)
    put("id-space", id=" ")
    put("id-del", id="a\x7f")
    put("id-tab", id="a\tb")
    put("id-mb", id="é")
    put("id-number", id=1)
    for n in [0, 1, 64, 65]:
        put("acct%d" % n, account_id="a" * n)
    put("acct-dot", account_id="a.b")
    put("acct-mb", account_id="é")
    for v in [None, 1, 2, 0, True, "1"]:
        put("v-%s" % v, v=v)
    put("v-real", v=raw_number("1.0"))
    put("v-neg0", v=raw_number("-0"))
    put("v-absent", v=...)
    for t in ["payment.get ", "Payment.get", "", "payment", "x" * 128, "x" * 129, None, 1]:
        put("type-%s" % str(t)[:20], type=t)
    put("type-absent", type=...)
    for p in [None, [], "x", 1]:
        put("payload-%s" % p, payload=p)
    put("payload-absent", payload=...)
    for r in [None, "", ".", "..", "...", "a" * 249, "a" * 250, "a b", "é", 1, "billing.replies"]:
        put("reply-%s" % str(r)[:10], reply_to=r)
    for c in [None, "", "c" * 128, "c" * 129, "é" * 64, "é" * 65, "é" * 128, "é" * 129, "😀" * 128,
              "😀" * 129, 1, "a\u0000b"]:
        put("corr-%s-%d" % (type(c).__name__, len(c) if isinstance(c, str) else 0), correlation_id=c)
    put("unknown-top", future={"x": [1, 2, {"y": None}]})

    good = dumps(base)
    for key in ["acct_seed", "", "acct_seed ", "other", "acct_seed\x00"]:
        corpus.add("key-%r" % key, good, key=key)
    corpus.add("key-unterminated", "", key="acct_seed")
    # Not JSON objects, and byte-level damage.
    for v in [b"", b"null", b"[]", b"1", b"\"x\"", b"{", b"{}", b" { } ", b"{}{}", b"{}\x00"]:
        corpus.add("raw-%r" % v, v)
    for bad in [b"\x80", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xf0\x9f\x98",
                b"\xff", b"\xc3"]:
        corpus.add("utf8-string-%s" % bad.hex(), good.encode().replace(b"pay_1", b"pay_" + bad))
        corpus.add("utf8-outside-%s" % bad.hex(), good.encode() + bad)
    corpus.add("nul-raw", good.encode().replace(b"pay_1", b"pay\x001"))
    corpus.add("nul-escape-id", good.replace('"req_seed"', '"req\\u0000seed"'))
    corpus.add("nul-escape-type", good.replace('"payment.get"', '"payment.get\\u0000x"'))
    corpus.add("escape-surrogate", good.replace('"pay_1"', '"\\ud800"'))
    corpus.add("escape-pair", good.replace('"pay_1"', '"\\ud83d\\ude00"'))
    corpus.add("escape-type", good.replace('"payment.get"', '"payment\\u002eget"'))
    corpus.add("dup-top", good[:-1] + ',"id":"again"}')
    corpus.add("dup-payload", good.replace('"pay_1"', '"pay_1","payment_id":"pay_2"'))
    corpus.add("deep-2000", good[:-1] + ',"deep":' + "[" * 2000 + "]" * 2000 + "}")
    corpus.add("deep-3000", good[:-1] + ',"deep":' + "[" * 3000 + "]" * 3000 + "}")
    corpus.add("deep-objects", good[:-1] + ',"deep":' + '{"a":' * 500 + "1" + "}" * 500 + "}")
    for text in ["99999999999999999999", "1e400", "-1e400", "-0", "1e-400", "9223372036854775807",
                 "-9223372036854775808", "9223372036854775808"]:
        corpus.add("bignum-top-" + text, good[:-1] + ',"n":' + text + "}")
    corpus.add("long-string", good[:-1] + ',"s":"' + "é" * 3000 + '"}')


def dictionary(schemas, types, path):
    words = set()
    for s in schemas:
        def walk(node):
            if isinstance(node, dict):
                for k, v in node.get("properties", {}).items():
                    words.add(k)
                    walk(v)
                for v in node.get("enum", []) or []:
                    if isinstance(v, str):
                        words.add(v)
                for k in ("items", "additionalProperties"):
                    if isinstance(node.get(k), dict):
                        walk(node[k])
                for v in node.get("anyOf", []):
                    walk(v)
        walk(s)
    words |= set(types)
    tokens = [b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"false", b"-0", b"1e400",
              b"\\u0000", b"\\ud800", b"\\u00e9", b"9223372036854775807", b"1000000000000000",
              b"10000", b"2026-11-22T10:00:00.000Z", b"+23:59", "é".encode(), "😀".encode(),
              b"\xed\xa0\x80", b"\x01acct_seed\x01"]
    with open(path, "w", encoding="ascii") as f:
        for w in sorted(words):
            f.write('"%s"\n' % escape(('"%s"' % w).encode()))
        for t in tokens:
            f.write('"%s"\n' % escape(t))


def escape(b):
    """A libFuzzer dictionary string: printable ASCII as is, the rest as \\xNN."""
    return "".join("\\x%02x" % c if c < 0x20 or c > 0x7E or c in (0x22, 0x5C) else chr(c) for c in b)


def main():
    docs, out, dict_path = sys.argv[1:4]
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    corpus = Corpus(out)
    examples = os.path.join(docs, "examples")
    types, schemas = [], []
    for path in sorted(glob.glob(os.path.join(docs, "*.json"))):
        name = os.path.basename(path)[:-5]
        schemas.append(load(path))
        if name != "envelope":
            types.append(name)
    for path in sorted(glob.glob(os.path.join(examples, "*.json"))):
        base = os.path.basename(path)[:-5]
        type_, kind = base.rsplit(".", 1)
        for i, item in enumerate(load(path)):
            if type_ == "envelope":
                corpus.add("ex-%s-%d" % (base, i), item)
            else:
                corpus.add("ex-%s-%d" % (base, i), envelope(type_, item, correlation_id="c-%d" % i))
    by_name = {os.path.basename(p)[:-5]: load(p) for p in glob.glob(os.path.join(docs, "*.json"))}
    for type_ in types:
        valid = os.path.join(examples, type_ + ".valid.json")
        base = load(valid)[0] if os.path.exists(valid) else {}
        payload_edges(corpus, type_, by_name[type_], base)
    envelope_edges(corpus)
    dictionary(schemas, types, dict_path)
    print("make_corpus: %d seeds in %s, dictionary %s" % (corpus.n, out, dict_path))


if __name__ == "__main__":
    main()
