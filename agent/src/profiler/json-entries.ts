/**
 * JSON.parse keeps only the last of an object's members with the same name. bpftrace's `-f json`
 * map output repeats a key when two entries print alike (the same stack from different
 * threads), so the profiler parses with this instead: objects become their members in order,
 * duplicates included.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  members: Array<[string, JsonValue]>;
}

const STRING = /"(?:[^"\\]|\\.)*"/y;
const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const LITERAL = /true|false|null/y;
const SPACE = /\s*/y;

class Reader {
  at = 0;
  constructor(private readonly text: string) {}

  fail(what: string): never {
    throw new SyntaxError(`bad JSON at ${this.at}: expected ${what}`);
  }

  skip(): void {
    SPACE.lastIndex = this.at;
    SPACE.exec(this.text);
    this.at = SPACE.lastIndex;
  }

  token(re: RegExp, what: string): string {
    re.lastIndex = this.at;
    const m = re.exec(this.text);
    if (m === null) this.fail(what);
    this.at = re.lastIndex;
    return m[0];
  }

  expect(ch: string): void {
    this.skip();
    if (this.text[this.at] !== ch) this.fail(`'${ch}'`);
    this.at++;
  }

  /** Consumes `ch` if it comes next. */
  eat(ch: string): boolean {
    this.skip();
    if (this.text[this.at] !== ch) return false;
    this.at++;
    return true;
  }

  value(): JsonValue {
    this.skip();
    const ch = this.text[this.at];
    if (ch === '{') return this.object();
    if (ch === '[') return this.array();
    if (ch === '"') return JSON.parse(this.token(STRING, 'a string')) as string;
    if (ch === 't' || ch === 'f' || ch === 'n') return JSON.parse(this.token(LITERAL, 'a value')) as boolean | null;
    return Number(this.token(NUMBER, 'a value'));
  }

  object(): JsonObject {
    this.expect('{');
    const members: Array<[string, JsonValue]> = [];
    if (this.eat('}')) return { members };
    do {
      this.skip();
      const key = JSON.parse(this.token(STRING, 'a member name')) as string;
      this.expect(':');
      members.push([key, this.value()]);
    } while (this.eat(','));
    this.expect('}');
    return { members };
  }

  array(): JsonValue[] {
    this.expect('[');
    const items: JsonValue[] = [];
    if (this.eat(']')) return items;
    do items.push(this.value());
    while (this.eat(','));
    this.expect(']');
    return items;
  }
}

/** Parses one JSON document; throws SyntaxError on anything else (trailing text included). */
export function parseJsonEntries(text: string): JsonValue {
  const r = new Reader(text);
  const v = r.value();
  r.skip();
  if (r.at !== text.length) r.fail('the end');
  return v;
}

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first member named `key` of an object value, if any. */
export function member(v: JsonValue | undefined, key: string): JsonValue | undefined {
  return isJsonObject(v) ? v.members.find(([k]) => k === key)?.[1] : undefined;
}
