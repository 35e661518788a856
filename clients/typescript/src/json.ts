// json — JSON text in and out without losing an integer.
//
// Out: a bigint is written as a JSON integer literal (JSON.stringify throws on
// one); a number must be a finite number, and an integer-valued one is written
// as an integer literal (`1999`, never `1999.0` or `1e+21`: numbers beyond
// Number.MAX_SAFE_INTEGER are refused, since they may already be rounded).
// In: integer literals within ±(2^53 − 1) become numbers, larger ones become
// bigints instead of silently rounded numbers; a literal with a fraction or an
// exponent becomes a number, or a JsonFloat keeping its text when asked.

/** A number literal that had a fraction or an exponent (`1999.0`, `1e3`), kept as written. */
export class JsonFloat {
  constructor(readonly source: string) {}
  valueOf(): number {
    return Number(this.source);
  }
}

/** A value that cannot be written as the JSON the contract expects. */
export class JsonValueError extends Error {
  override name = 'JsonValueError';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;

/** JSON text of value; throws JsonValueError naming the path of a value it cannot write. */
export function stringifyJson(value: unknown, path = ''): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'number':
      if (!Number.isFinite(value))
        throw new JsonValueError(path, `${path || 'value'} is ${value}, which JSON cannot hold`);
      if (Number.isInteger(value) && !Number.isSafeInteger(value))
        throw new JsonValueError(
          path,
          `${path || 'value'} is beyond Number.MAX_SAFE_INTEGER and may have been rounded; pass a bigint`,
        );
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (value instanceof JsonFloat) return value.source;
      if (Array.isArray(value))
        return `[${value.map((v, i) => stringifyJson(v === undefined ? null : v, join(path, i))).join(',')}]`;
      const parts: string[] = [];
      for (const [k, v] of Object.entries(value)) {
        if (v === undefined) continue; // as JSON.stringify: an absent field
        parts.push(`${JSON.stringify(k)}:${stringifyJson(v, join(path, k))}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new JsonValueError(path, `${path || 'value'} is a ${typeof value}, which JSON cannot hold`);
  }
}

export interface ParseOptions {
  /** Keep literals with a fraction or exponent as JsonFloat (default: numbers). */
  keepFloats?: boolean;
}

// Integer literals of 16 digits or more may be unsafe; without one, JSON.parse
// gives the same values faster.
const LONG_DIGITS = /\d{16}/;

/** Parses JSON text; integers beyond ±(2^53 − 1) come back as bigint. Throws SyntaxError. */
export function parseJson(text: string, options: ParseOptions = {}): unknown {
  if (!options.keepFloats && !LONG_DIGITS.test(text)) return JSON.parse(text);
  return new Parser(text, options.keepFloats === true).parseDocument();
}

const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;
const WHITESPACE = /[ \t\n\r]*/y;

class Parser {
  private pos = 0;
  constructor(
    private readonly text: string,
    private readonly keepFloats: boolean,
  ) {}

  parseDocument(): unknown {
    const v = this.value();
    this.skip();
    if (this.pos !== this.text.length) this.fail('unexpected text after the value');
    return v;
  }

  private fail(what: string): never {
    throw new SyntaxError(`JSON: ${what} at position ${this.pos}`);
  }

  private skip(): void {
    WHITESPACE.lastIndex = this.pos;
    WHITESPACE.exec(this.text);
    this.pos = WHITESPACE.lastIndex;
  }

  private value(): unknown {
    this.skip();
    const c = this.text[this.pos];
    if (c === '{') return this.object();
    if (c === '[') return this.array();
    if (c === '"') return this.string();
    for (const [word, v] of [['true', true], ['false', false], ['null', null]] as const) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return v;
      }
    }
    return this.number();
  }

  private number(): unknown {
    NUMBER.lastIndex = this.pos;
    const m = NUMBER.exec(this.text);
    if (m === null) this.fail('expected a value');
    this.pos = NUMBER.lastIndex;
    const literal = m[0];
    if (m[1] !== undefined || m[2] !== undefined)
      return this.keepFloats ? new JsonFloat(literal) : Number(literal);
    const n = Number(literal);
    return Number.isSafeInteger(n) ? n : BigInt(literal);
  }

  private string(): string {
    // The string's extent, then JSON.parse for its escapes.
    let i = this.pos + 1;
    for (;;) {
      const c = this.text.charCodeAt(i);
      if (Number.isNaN(c)) this.fail('unterminated string');
      if (c === 0x22) break;
      i += c === 0x5c ? 2 : 1;
    }
    const s = JSON.parse(this.text.slice(this.pos, i + 1)) as string;
    this.pos = i + 1;
    return s;
  }

  private array(): unknown[] {
    this.pos++;
    const out: unknown[] = [];
    this.skip();
    if (this.text[this.pos] === ']') {
      this.pos++;
      return out;
    }
    for (;;) {
      out.push(this.value());
      this.skip();
      const c = this.text[this.pos++];
      if (c === ']') return out;
      if (c !== ',') this.fail("expected ',' or ']'");
    }
  }

  private object(): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    this.skip();
    if (this.text[this.pos] === '}') {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skip();
      if (this.text[this.pos] !== '"') this.fail('expected a key');
      const key = this.string();
      this.skip();
      if (this.text[this.pos++] !== ':') this.fail("expected ':'");
      Object.defineProperty(out, key, { value: this.value(), enumerable: true, writable: true, configurable: true });
      this.skip();
      const c = this.text[this.pos++];
      if (c === '}') return out;
      if (c !== ',') this.fail("expected ',' or '}'");
    }
  }
}
