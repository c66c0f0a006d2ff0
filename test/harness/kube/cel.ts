// A small subset of CEL (https://github.com/google/cel-spec), enough for admission webhook
// matchConditions as kube-apiserver evaluates them (k8s.io/apiserver/pkg/admission/plugin/
// webhook/matchconditions). Anything outside the subset is refused at compile time with
// CelUnsupportedError, never evaluated approximately.
//
// Supported:
//   literals        'single' and "double" quoted strings (escapes \\ \' \" \n \r \t),
//                   decimal integers, true, false, null, list literals [a, b]
//   variables       the names passed to compileCel (object, oldObject, request)
//   selection       a.b.c, a['key'], list[0]
//   macro           has(a.b) — false when b is absent from map a; a itself is evaluated
//                   normally (an error if a is missing)
//   operators       !  &&  ||  ==  !=  in  ( )
// Semantics follow cel-go: && and || are commutative and absorb errors (false && error is
// false, true || error is true, error && true is the error); == is heterogeneous (values of
// different types are unequal, 1 == 1.0); `in` tests map keys and list elements; selecting a
// missing key is the error "no such key: k". The compiler also checks types as far as the
// subset allows: the expression must be of type bool (as kube requires of a match
// condition), and literal operands of the wrong type are refused.
// Not supported (refused): function and method calls other than has(), arithmetic,
// ordering (< <= > >=), the conditional operator ?:, map literals, floats, unsigned and
// hex integers, bytes and raw strings, macros such as all/exists/map/filter, `authorizer`.

export type CelValue = null | boolean | number | string | CelValue[] | { [key: string]: CelValue };

/** The expression is valid CEL outside the subset this double implements. */
export class CelUnsupportedError extends Error {}
/** The expression is not valid CEL (syntax, undeclared reference, type error). */
export class CelCompileError extends Error {}

/** A runtime error value: CEL propagates errors as values so that && and || can absorb them. */
class CelErr {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

type Val = unknown;

type StaticType = 'bool' | 'string' | 'int' | 'null' | 'list' | 'dyn';

type Node =
  | { kind: 'lit'; value: CelValue; pos: number }
  | { kind: 'list'; items: Node[]; pos: number }
  | { kind: 'ident'; name: string; pos: number }
  | { kind: 'select'; operand: Node; field: string; pos: number }
  | { kind: 'index'; operand: Node; index: Node; pos: number }
  | { kind: 'has'; operand: Node; field: string; pos: number }
  | { kind: 'not'; operand: Node; pos: number }
  | { kind: 'and' | 'or' | 'eq' | 'ne' | 'in'; left: Node; right: Node; pos: number };

// ---- tokenizer -----------------------------------------------------------------------

type Token =
  | { t: 'str'; value: string; pos: number; text: string }
  | { t: 'int'; value: number; pos: number; text: string }
  | { t: 'ident'; value: string; pos: number; text: string }
  | { t: 'punct'; value: string; pos: number; text: string }
  | { t: 'eof'; value: ''; pos: number; text: '' };

const SUPPORTED_PUNCT = ['&&', '||', '==', '!=', '!', '.', '[', ']', '(', ')', ','];
/** Valid CEL operators the subset does not implement. */
const UNSUPPORTED_PUNCT = ['<=', '>=', '<', '>', '+', '-', '*', '/', '%', '?', ':', '{', '}'];
const RESERVED = new Set([
  'as',
  'break',
  'const',
  'continue',
  'else',
  'for',
  'function',
  'if',
  'import',
  'let',
  'loop',
  'package',
  'namespace',
  'return',
  'var',
  'void',
  'while',
]);

const SUBSET = 'supported: string/int/bool/null/list literals, field selection, index, has(), in, !, &&, ||, ==, !=, parentheses';

class Source {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  where(pos: number): string {
    const before = this.text.slice(0, pos);
    const line = before.split('\n').length;
    const col = pos - before.lastIndexOf('\n');
    return `<input>:${line}:${col}`;
  }
  syntax(pos: number, message: string): CelCompileError {
    return new CelCompileError(`ERROR: ${this.where(pos)}: ${message}`);
  }
  unsupported(pos: number, what: string): CelUnsupportedError {
    return new CelUnsupportedError(`the expression uses CEL the Nemutator Kubernetes double does not implement: ${what} at ${this.where(pos)} (${SUBSET})`);
  }
}

function tokenize(src: Source): Token[] {
  const s = src.text;
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '/' && s[i + 1] === '/') {
      while (i < s.length && s[i] !== '\n') i++;
      continue;
    }
    const start = i;
    if (/[A-Za-z_]/.test(c)) {
      while (i < s.length && /[A-Za-z0-9_]/.test(s[i] as string)) i++;
      const word = s.slice(start, i);
      // Raw and bytes string prefixes: r'..', b"..", rb'..'.
      if (/^(r|R|b|B|rb|rB|Rb|RB|br|bR|Br|BR)$/.test(word) && (s[i] === '"' || s[i] === "'")) {
        throw src.unsupported(start, `${/b/i.test(word) ? 'bytes' : 'raw string'} literal "${word}${s[i]}"`);
      }
      out.push({ t: 'ident', value: word, pos: start, text: word });
      continue;
    }
    if (/[0-9]/.test(c)) {
      while (i < s.length && /[0-9A-Za-z_.]/.test(s[i] as string)) {
        // Stop at a '.' that starts a field selection rather than a fraction.
        if (s[i] === '.' && !/[0-9]/.test(s[i + 1] ?? '')) break;
        i++;
      }
      const text = s.slice(start, i);
      if (/^[0-9]+$/.test(text)) {
        out.push({ t: 'int', value: Number(text), pos: start, text });
        continue;
      }
      if (/^0x[0-9a-fA-F]+u?$/.test(text) || /^[0-9]+u$/i.test(text))
        throw src.unsupported(start, `${text.endsWith('u') || text.endsWith('U') ? 'unsigned' : 'hexadecimal'} integer literal "${text}"`);
      if (/^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$/.test(text)) throw src.unsupported(start, `floating-point literal "${text}"`);
      throw src.syntax(start, `Syntax error: token recognition error at: '${text}'`);
    }
    if (c === '"' || c === "'") {
      if (s.startsWith(c.repeat(3), i)) throw src.unsupported(start, `triple-quoted string literal "${c.repeat(3)}"`);
      i++;
      let value = '';
      for (;;) {
        if (i >= s.length || s[i] === '\n') throw src.syntax(start, `Syntax error: token recognition error at: '${s.slice(start, i)}'`);
        const d = s[i] as string;
        if (d === c) {
          i++;
          break;
        }
        if (d === '\\') {
          const e = s[i + 1] ?? '';
          const map: Record<string, string> = { '\\': '\\', "'": "'", '"': '"', n: '\n', r: '\r', t: '\t', '`': '`', '?': '?' };
          if (!(e in map)) throw src.unsupported(i, `string escape "\\${e}"`);
          value += map[e];
          i += 2;
          continue;
        }
        value += d;
        i++;
      }
      out.push({ t: 'str', value, pos: start, text: s.slice(start, i) });
      continue;
    }
    const two = s.slice(i, i + 2);
    const op = [two, c].find((p) => SUPPORTED_PUNCT.includes(p) || UNSUPPORTED_PUNCT.includes(p));
    if (op === undefined) throw src.syntax(start, `Syntax error: token recognition error at: '${c}'`);
    if (UNSUPPORTED_PUNCT.includes(op)) {
      const name = op === '?' || op === ':' ? 'conditional operator' : op === '{' || op === '}' ? 'map literal' : 'operator';
      throw src.unsupported(start, `${name} "${op}"`);
    }
    out.push({ t: 'punct', value: op, pos: start, text: op });
    i += op.length;
  }
  out.push({ t: 'eof', value: '', pos: s.length, text: '' });
  return out;
}

// ---- parser --------------------------------------------------------------------------

class Parser {
  private readonly tokens: Token[];
  private readonly src: Source;
  private readonly variables: Set<string>;
  private readonly unsupportedVariables: Set<string>;
  private i = 0;

  constructor(src: Source, variables: string[], unsupportedVariables: string[]) {
    this.src = src;
    this.tokens = tokenize(src);
    this.variables = new Set(variables);
    this.unsupportedVariables = new Set(unsupportedVariables);
  }

  parse(): Node {
    const n = this.or();
    const t = this.peek();
    if (t.t !== 'eof') throw this.src.syntax(t.pos, `Syntax error: extraneous input '${t.text}'`);
    return n;
  }

  private peek(): Token {
    return this.tokens[this.i] as Token;
  }
  private next(): Token {
    return this.tokens[this.i++] as Token;
  }
  private isPunct(v: string): boolean {
    const t = this.peek();
    return t.t === 'punct' && t.value === v;
  }
  private expect(v: string): Token {
    const t = this.next();
    if (t.t !== 'punct' || t.value !== v)
      throw this.src.syntax(
        t.pos,
        t.t === 'eof' ? `Syntax error: mismatched input '<EOF>' expecting '${v}'` : `Syntax error: mismatched input '${t.text}' expecting '${v}'`,
      );
    return t;
  }

  private or(): Node {
    let left = this.and();
    while (this.isPunct('||')) {
      const pos = this.next().pos;
      left = { kind: 'or', left, right: this.and(), pos };
    }
    return left;
  }
  private and(): Node {
    let left = this.relation();
    while (this.isPunct('&&')) {
      const pos = this.next().pos;
      left = { kind: 'and', left, right: this.relation(), pos };
    }
    return left;
  }
  private relation(): Node {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.t === 'punct' && (t.value === '==' || t.value === '!=')) {
        this.next();
        left = { kind: t.value === '==' ? 'eq' : 'ne', left, right: this.unary(), pos: t.pos };
      } else if (t.t === 'ident' && t.value === 'in') {
        this.next();
        left = { kind: 'in', left, right: this.unary(), pos: t.pos };
      } else {
        return left;
      }
    }
  }
  private unary(): Node {
    if (this.isPunct('!')) {
      const pos = this.next().pos;
      return { kind: 'not', operand: this.unary(), pos };
    }
    return this.member();
  }
  private member(): Node {
    let n = this.primary();
    for (;;) {
      if (this.isPunct('.')) {
        this.next();
        const f = this.next();
        if (f.t !== 'ident') throw this.src.syntax(f.pos, `Syntax error: no viable alternative at input '.${f.text}'`);
        if (this.isPunct('(')) throw this.src.unsupported(f.pos, `method call "${f.value}()"`);
        n = { kind: 'select', operand: n, field: f.value, pos: f.pos };
      } else if (this.isPunct('[')) {
        const pos = this.next().pos;
        const index = this.or();
        this.expect(']');
        n = { kind: 'index', operand: n, index, pos };
      } else {
        return n;
      }
    }
  }
  private primary(): Node {
    const t = this.next();
    switch (t.t) {
      case 'str':
        return { kind: 'lit', value: t.value, pos: t.pos };
      case 'int':
        if (!Number.isSafeInteger(t.value)) throw this.src.unsupported(t.pos, `integer literal "${t.text}" beyond 2^53`);
        return { kind: 'lit', value: t.value, pos: t.pos };
      case 'ident': {
        if (t.value === 'true' || t.value === 'false') return { kind: 'lit', value: t.value === 'true', pos: t.pos };
        if (t.value === 'null') return { kind: 'lit', value: null, pos: t.pos };
        if (t.value === 'in' || RESERVED.has(t.value)) throw this.src.syntax(t.pos, `reserved identifier: ${t.value}`);
        if (this.isPunct('(')) {
          if (t.value !== 'has') throw this.src.unsupported(t.pos, `function call "${t.value}()"`);
          this.next();
          const arg = this.or();
          this.expect(')');
          if (arg.kind !== 'select') throw this.src.syntax(t.pos, 'invalid argument to has() macro');
          return { kind: 'has', operand: arg.operand, field: arg.field, pos: t.pos };
        }
        if (this.unsupportedVariables.has(t.value)) throw this.src.unsupported(t.pos, `variable "${t.value}"`);
        if (!this.variables.has(t.value)) throw this.src.syntax(t.pos, `undeclared reference to '${t.value}' (in container '')`);
        return { kind: 'ident', name: t.value, pos: t.pos };
      }
      case 'punct':
        if (t.value === '(') {
          const n = this.or();
          this.expect(')');
          return n;
        }
        if (t.value === '[') {
          const items: Node[] = [];
          while (!this.isPunct(']')) {
            items.push(this.or());
            if (!this.isPunct(',')) break;
            this.next();
          }
          this.expect(']');
          return { kind: 'list', items, pos: t.pos };
        }
        throw this.src.syntax(t.pos, `Syntax error: mismatched input '${t.text}'`);
      case 'eof':
        throw this.src.syntax(t.pos, "Syntax error: mismatched input '<EOF>'");
    }
  }
}

// ---- type check ----------------------------------------------------------------------

function typeOfLiteral(v: CelValue): StaticType {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return 'int';
  return 'string';
}

function check(src: Source, n: Node): StaticType {
  const noOverload = (op: string, types: StaticType[]): CelCompileError =>
    src.syntax(
      n.pos,
      `found no matching overload for '${op}' applied to '(${types.map((t) => (t === 'list' ? 'list(dyn)' : t === 'null' ? 'null_type' : t)).join(', ')})'`,
    );
  switch (n.kind) {
    case 'lit':
      return typeOfLiteral(n.value);
    case 'list':
      n.items.forEach((x) => check(src, x));
      return 'list';
    case 'ident':
      return 'dyn';
    case 'select':
    case 'has': {
      const t = check(src, n.operand);
      if (t !== 'dyn') throw src.syntax(n.pos, `type '${t}' does not support field selection`);
      return n.kind === 'has' ? 'bool' : 'dyn';
    }
    case 'index': {
      const t = check(src, n.operand);
      const it = check(src, n.index);
      if (t === 'list' && it !== 'int' && it !== 'dyn') throw noOverload('_[_]', [t, it]);
      if (t !== 'dyn' && t !== 'list') throw noOverload('_[_]', [t, it]);
      return 'dyn';
    }
    case 'not': {
      const t = check(src, n.operand);
      if (t !== 'bool' && t !== 'dyn') throw noOverload('!_', [t]);
      return 'bool';
    }
    case 'and':
    case 'or': {
      const l = check(src, n.left);
      const r = check(src, n.right);
      if ((l !== 'bool' && l !== 'dyn') || (r !== 'bool' && r !== 'dyn')) throw noOverload(n.kind === 'and' ? '_&&_' : '_||_', [l, r]);
      return 'bool';
    }
    case 'eq':
    case 'ne': {
      const l = check(src, n.left);
      const r = check(src, n.right);
      // null compares with anything nullable; concrete types must agree.
      if (l !== 'dyn' && r !== 'dyn' && l !== r && l !== 'null' && r !== 'null') throw noOverload(n.kind === 'eq' ? '_==_' : '_!=_', [l, r]);
      return 'bool';
    }
    case 'in': {
      const l = check(src, n.left);
      const r = check(src, n.right);
      if (r !== 'dyn' && r !== 'list') throw noOverload('@in', [l, r]);
      return 'bool';
    }
  }
}

// ---- evaluation ----------------------------------------------------------------------

function isMap(v: Val): v is Record<string, Val> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: Val): string {
  if (v === null || v === undefined) return 'null_type';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'double';
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return 'list';
  return 'map';
}

/** cel-go's heterogeneous equality: values of different types are unequal, numbers compare by value. */
function celEquals(a: Val, b: Val): boolean {
  if (a === undefined) a = null;
  if (b === undefined) b = null;
  if (typeof a === 'number' && typeof b === 'number') return a === b;
  if (typeName(a) !== typeName(b) && !(typeof a === 'number' && typeof b === 'number')) return false;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => celEquals(x, b[i]));
  if (isMap(a) && isMap(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && celEquals(a[k], b[k]));
  }
  return a === b;
}

function select(v: Val, field: string): Val {
  if (v instanceof CelErr) return v;
  if (!isMap(v)) return new CelErr(`no such overload: ${typeName(v)}.${field}`);
  return Object.hasOwn(v, field) ? (v[field] ?? null) : new CelErr(`no such key: ${field}`);
}

function evaluate(n: Node, vars: Record<string, Val>): Val {
  switch (n.kind) {
    case 'lit':
      return n.value;
    case 'list': {
      const items = n.items.map((x) => evaluate(x, vars));
      return items.find((x) => x instanceof CelErr) ?? items;
    }
    case 'ident':
      return vars[n.name] ?? null;
    case 'select':
      return select(evaluate(n.operand, vars), n.field);
    case 'has': {
      const v = evaluate(n.operand, vars);
      if (v instanceof CelErr) return v;
      if (!isMap(v)) return new CelErr(`no such overload: has() on ${typeName(v)}`);
      return Object.hasOwn(v, n.field);
    }
    case 'index': {
      const v = evaluate(n.operand, vars);
      const i = evaluate(n.index, vars);
      if (v instanceof CelErr) return v;
      if (i instanceof CelErr) return i;
      if (Array.isArray(v)) {
        if (typeof i !== 'number' || !Number.isInteger(i)) return new CelErr(`no such overload: list[${typeName(i)}]`);
        return i >= 0 && i < v.length ? (v[i] ?? null) : new CelErr(`index out of bounds: ${i}`);
      }
      if (isMap(v)) {
        if (typeof i !== 'string') return new CelErr(`no such key: ${String(i)}`);
        return select(v, i);
      }
      return new CelErr(`no such overload: ${typeName(v)}[${typeName(i)}]`);
    }
    case 'not': {
      const v = evaluate(n.operand, vars);
      if (v instanceof CelErr) return v;
      return typeof v === 'boolean' ? !v : new CelErr(`no such overload: !${typeName(v)}`);
    }
    case 'and':
    case 'or': {
      // Commutative: a decisive operand (false for &&, true for ||) wins over an error on either side.
      const decisive = n.kind === 'or';
      const l = evaluate(n.left, vars);
      if (l === decisive) return decisive;
      const r = evaluate(n.right, vars);
      if (r === decisive) return decisive;
      if (typeof l === 'boolean' && typeof r === 'boolean') return !decisive;
      if (l instanceof CelErr) return l;
      if (r instanceof CelErr) return r;
      return new CelErr(`no such overload: ${typeName(l)} ${n.kind === 'and' ? '&&' : '||'} ${typeName(r)}`);
    }
    case 'eq':
    case 'ne': {
      const l = evaluate(n.left, vars);
      if (l instanceof CelErr) return l;
      const r = evaluate(n.right, vars);
      if (r instanceof CelErr) return r;
      return celEquals(l, r) === (n.kind === 'eq');
    }
    case 'in': {
      const l = evaluate(n.left, vars);
      if (l instanceof CelErr) return l;
      const r = evaluate(n.right, vars);
      if (r instanceof CelErr) return r;
      if (Array.isArray(r)) return r.some((x) => celEquals(l, x));
      if (isMap(r)) return typeof l === 'string' && Object.hasOwn(r, l);
      return new CelErr(`no such overload: ${typeName(l)} in ${typeName(r)}`);
    }
  }
}

// ---- API -----------------------------------------------------------------------------

export interface CelProgram {
  expression: string;
  /** The result value, or an evaluation error (CEL errors are values, never thrown). */
  evaluate(vars: Record<string, unknown>): { value: CelValue } | { error: string };
}

export interface CompileOptions {
  /** Declared variables. */
  variables: string[];
  /** Declared in kube's environment but not implemented here (refused as unsupported). */
  unsupportedVariables?: string[];
  /** The type the expression must have (kube requires bool of a match condition). */
  resultType?: 'bool';
}

/**
 * Parses and type-checks an expression. Throws CelUnsupportedError for CEL outside the
 * subset and CelCompileError for expressions that are not valid CEL.
 */
export function compileCel(expression: string, opts: CompileOptions): CelProgram {
  const src = new Source(expression);
  const ast = new Parser(src, opts.variables, opts.unsupportedVariables ?? []).parse();
  const type = check(src, ast);
  if (opts.resultType && type !== opts.resultType) {
    throw src.syntax(0, `must evaluate to one of [${opts.resultType}]`);
  }
  return {
    expression,
    evaluate(vars) {
      const v = evaluate(ast, vars);
      if (v instanceof CelErr) return { error: v.message };
      return { value: (v ?? null) as CelValue };
    },
  };
}
