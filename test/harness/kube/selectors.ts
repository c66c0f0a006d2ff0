// Label and field selectors with the syntax and errors of k8s.io/apimachinery's
// labels.Parse and fields.ParseSelector, plus metav1.LabelSelector (matchLabels /
// matchExpressions) as used by Deployments, PDBs and webhook selectors.
import { badRequest } from './status.ts';

export type Labels = Record<string, string>;

export type Requirement =
  { key: string; op: 'in' | 'notin'; values: string[] } | { key: string; op: 'exists' | '!' } | { key: string; op: 'gt' | 'lt'; value: number };

export type LabelSelector = Requirement[];

export function matchesLabelSelector(selector: LabelSelector, labels: Labels | undefined): boolean {
  const l = labels ?? {};
  return selector.every((req) => {
    const has = Object.prototype.hasOwnProperty.call(l, req.key);
    const v = l[req.key];
    switch (req.op) {
      case 'in':
        return has && req.values.includes(v as string);
      case 'notin':
        return !has || !req.values.includes(v as string);
      case 'exists':
        return has;
      case '!':
        return !has;
      case 'gt':
      case 'lt': {
        if (!has || !/^-?\d+$/.test(v as string)) return false;
        const n = Number(v);
        return req.op === 'gt' ? n > req.value : n < req.value;
      }
    }
  });
}

/** Parses "app=web,tier!=db,env in (a,b),!legacy,release". */
export function parseLabelSelector(text: string | undefined | null): LabelSelector {
  const s = (text ?? '').trim();
  if (s === '') return [];
  const reqs: Requirement[] = [];
  let i = 0;
  const fail = (why: string): never => {
    throw badRequest(`unable to parse requirement: ${why}`);
  };
  const skipSpace = (): void => {
    while (i < s.length && s[i] === ' ') i++;
  };
  const readKey = (): string => {
    skipSpace();
    const start = i;
    while (i < s.length && /[A-Za-z0-9._\-/]/.test(s[i] as string)) i++;
    const key = s.slice(start, i);
    if (!key) fail(`found '${s[i] ?? ''}', expected: identifier`);
    validateLabelKey(key);
    return key;
  };
  const readValue = (): string => {
    skipSpace();
    const start = i;
    while (i < s.length && /[A-Za-z0-9._-]/.test(s[i] as string)) i++;
    const value = s.slice(start, i);
    validateLabelValue(value);
    return value;
  };
  while (i < s.length) {
    skipSpace();
    if (s[i] === '!') {
      i++;
      reqs.push({ key: readKey(), op: '!' });
    } else {
      const key = readKey();
      skipSpace();
      const rest = s.slice(i);
      if (rest.startsWith('==')) {
        i += 2;
        reqs.push({ key, op: 'in', values: [readValue()] });
      } else if (rest.startsWith('!=')) {
        i += 2;
        reqs.push({ key, op: 'notin', values: [readValue()] });
      } else if (rest.startsWith('=')) {
        i += 1;
        reqs.push({ key, op: 'in', values: [readValue()] });
      } else if (rest.startsWith('>') || rest.startsWith('<')) {
        const op = rest.startsWith('>') ? 'gt' : 'lt';
        i += 1;
        const value = readValue();
        if (!/^-?\d+$/.test(value)) fail(`for 'Gt', 'Lt' operators, the value must be an integer`);
        reqs.push({ key, op, value: Number(value) });
      } else if (/^(in|notin)\s*\(/.test(rest)) {
        const op = rest.startsWith('in') ? 'in' : 'notin';
        i += op.length;
        skipSpace();
        i++; // (
        const values: string[] = [];
        for (;;) {
          values.push(readValue());
          skipSpace();
          if (s[i] === ',') {
            i++;
            continue;
          }
          if (s[i] === ')') {
            i++;
            break;
          }
          fail(`found '${s[i] ?? ''}', expected: ',' or ')'`);
        }
        reqs.push({ key, op, values });
      } else if (rest === '' || rest.startsWith(',')) {
        reqs.push({ key, op: 'exists' });
      } else {
        fail(`found '${rest[0]}', expected: in, notin, =, ==, !=, gt, lt`);
      }
    }
    skipSpace();
    if (i < s.length) {
      if (s[i] !== ',') fail(`found '${s[i]}', expected: ','`);
      i++;
    }
  }
  return reqs;
}

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function labelKeyProblem(key: string): string | undefined {
  const slash = key.indexOf('/');
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (slash >= 0) {
    const prefix = key.slice(0, slash);
    if (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)
      return "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
  }
  if (!name || name.length > 63 || !LABEL_NAME.test(name)) {
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  }
  return undefined;
}

export function labelValueProblem(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!LABEL_NAME.test(value)) {
    return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  }
  return undefined;
}

function validateLabelKey(key: string): void {
  const p = labelKeyProblem(key);
  if (p) throw badRequest(`unable to parse requirement: values[0][${key}]: Invalid value: "${key}": ${p}`);
}

function validateLabelValue(value: string): void {
  const p = labelValueProblem(value);
  if (p) throw badRequest(`unable to parse requirement: values[0]: Invalid value: "${value}": ${p}`);
}

// ---- metav1.LabelSelector -------------------------------------------------------------

export interface LabelSelectorObject {
  matchLabels?: Labels;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A nil selector matches nothing; an empty one ({}) matches everything — as metav1.LabelSelectorAsSelector. */
export function matchesLabelSelectorObject(selector: LabelSelectorObject | null | undefined, labels: Labels | undefined): boolean {
  if (selector === null || selector === undefined) return false;
  return matchesLabelSelector(labelSelectorFromObject(selector), labels);
}

export function labelSelectorFromObject(selector: LabelSelectorObject): LabelSelector {
  const reqs: Requirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) reqs.push({ key, op: 'in', values: [value] });
  for (const e of selector.matchExpressions ?? []) {
    switch (e.operator) {
      case 'In':
        reqs.push({ key: e.key, op: 'in', values: e.values ?? [] });
        break;
      case 'NotIn':
        reqs.push({ key: e.key, op: 'notin', values: e.values ?? [] });
        break;
      case 'Exists':
        reqs.push({ key: e.key, op: 'exists' });
        break;
      case 'DoesNotExist':
        reqs.push({ key: e.key, op: '!' });
        break;
      default:
        throw badRequest(`"${e.operator}" is not a valid label selector operator`);
    }
  }
  return reqs;
}

/** The string form ("app=web,tier in (a,b)"), as the Scale subresource's status.selector. */
export function formatLabelSelectorObject(selector: LabelSelectorObject | undefined): string {
  if (!selector) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(selector.matchLabels ?? {}).sort(([a], [b]) => a.localeCompare(b))) parts.push(`${k}=${v}`);
  for (const e of selector.matchExpressions ?? []) {
    if (e.operator === 'In') parts.push(`${e.key} in (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

// ---- field selectors -------------------------------------------------------------------

export interface FieldRequirement {
  field: string;
  op: '=' | '!=';
  value: string;
}

export function parseFieldSelector(text: string | undefined | null, allowed: readonly string[]): FieldRequirement[] {
  const s = (text ?? '').trim();
  if (s === '') return [];
  const reqs: FieldRequirement[] = [];
  for (const term of splitTerms(s)) {
    const m = /^([^=!]+?)\s*(==|!=|=)\s*(.*)$/.exec(term.trim());
    if (!m) throw badRequest(`invalid selector: '${s}'; can't understand '${term}'`);
    const field = m[1] as string;
    const op = m[2] === '!=' ? '!=' : '=';
    const value = unescapeFieldValue(m[3] as string);
    if (field !== 'metadata.name' && field !== 'metadata.namespace' && !allowed.includes(field)) {
      throw badRequest(`field label not supported: ${field}`);
    }
    reqs.push({ field, op, value });
  }
  return reqs;
}

function splitTerms(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i] as string;
    if (c === '\\' && i + 1 < s.length) {
      cur += c + (s[i + 1] as string);
      i++;
    } else if (c === ',') {
      out.push(cur);
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

function unescapeFieldValue(v: string): string {
  return v.replace(/\\(.)/g, '$1');
}

/** The value a field selector compares against: the string form of a dotted path. */
export function fieldValue(obj: Record<string, unknown>, field: string): string {
  if (field === 'source') {
    const src = (obj['source'] as { component?: string } | undefined)?.component;
    return src ?? '';
  }
  let cur: unknown = obj;
  for (const part of field.split('.')) {
    if (cur === null || typeof cur !== 'object') return '';
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) {
    if (field === 'spec.hostNetwork' || field === 'spec.unschedulable') return 'false';
    return '';
  }
  return String(cur);
}

export function matchesFieldSelector(reqs: FieldRequirement[], obj: Record<string, unknown>): boolean {
  return reqs.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}
