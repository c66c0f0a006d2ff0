/**
 * Translation of a string map (labels or annotations) through the dictionary: a key
 * `<keyPrefix><hash>` becomes the dictionary's value for it, a value `<valuePrefix><hash>`
 * likewise. Shared by the labels and annotations mutators.
 */
import { NEMU } from './types.ts';
import type { StringMap } from './workload.ts';

export interface MapRules {
  what: 'label' | 'annotation';
  keyPrefix: string;
  valuePrefix: string;
  validKey(key: string): boolean;
  validValue(value: string): boolean;
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** Kubernetes qualified name: `[prefix/]name`, prefix a DNS subdomain (≤ 253), name ≤ 63. */
export function isQualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash === -1) return NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && NAME.test(key.slice(slash + 1));
}

export function isLabelValue(value: string): boolean {
  return value === '' || NAME.test(value);
}

/** What a name part breaks (the dictionary's refusals say it); undefined when `NAME` accepts it. */
function nameProblem(name: string, what: string): string | undefined {
  if (NAME.test(name)) return undefined;
  if (name === '') return `the ${what} is empty`;
  if (name.length > 63) return `the ${what} has ${name.length} characters, at most 63 are allowed`;
  if (/[^-A-Za-z0-9_.]/.test(name)) return `the ${what} has a character other than letters, digits, '-', '_' and '.'`;
  return `the ${what} must begin and end with a letter or digit`;
}

/** Why `isQualifiedName` refuses a key, for messages; undefined when it accepts it. */
export function qualifiedNameProblem(key: string): string | undefined {
  if (isQualifiedName(key)) return undefined;
  const slash = key.indexOf('/');
  if (slash === -1) return nameProblem(key, 'name');
  const prefix = key.slice(0, slash);
  if (prefix.length > 253) return `the prefix before '/' has ${prefix.length} characters, at most 253 are allowed`;
  if (!DNS_SUBDOMAIN.test(prefix)) return `the prefix before '/' is not a DNS subdomain (lowercase letters, digits, '-' and '.', e.g. example.com)`;
  return nameProblem(key.slice(slash + 1), 'name after the prefix');
}

/** Why `isLabelValue` refuses a value, for messages; undefined when it accepts it. */
export function labelValueProblem(value: string): string | undefined {
  return isLabelValue(value) ? undefined : nameProblem(value, 'value');
}

export const LABEL_RULES: MapRules = {
  what: 'label',
  keyPrefix: 'nemu_label_',
  valuePrefix: 'nemu_label_value_',
  validKey: isQualifiedName,
  validValue: isLabelValue,
};
export const ANNOTATION_RULES: MapRules = {
  what: 'annotation',
  keyPrefix: 'nemu_anno_',
  valuePrefix: 'nemu_anno_value_',
  validKey: isQualifiedName,
  validValue: () => true,
};

/** Dictionary keys a map may need. */
export function mapKeys(map: unknown, rules: MapRules, into: Set<string>): void {
  if (typeof map !== 'object' || map === null) return;
  for (const [k, v] of Object.entries(map as StringMap)) {
    if (k.startsWith(rules.keyPrefix)) into.add(k);
    if (typeof v === 'string' && v.startsWith(rules.valuePrefix)) into.add(v);
  }
}

/**
 * Translates one map in place; returns whether it changed. Entries in `keep` are left alone
 * (labels a Deployment selector depends on belong to the selectors mutator).
 */
export function translateMap(
  map: StringMap,
  rules: MapRules,
  dict: ReadonlyMap<string, string>,
  warn: (m: string) => void,
  keep: ReadonlySet<string> = new Set(),
): boolean {
  let changed = false;
  for (const [key, value] of Object.entries(map)) {
    if (keep.has(key)) continue;
    let newKey = key;
    let newValue = value;
    if (key.startsWith(rules.keyPrefix) && !key.startsWith(rules.valuePrefix)) {
      const real = lookup(dict, key, rules, 'key', warn);
      if (real !== undefined) newKey = real;
    }
    if (typeof value === 'string' && value.startsWith(rules.valuePrefix)) {
      const real = lookup(dict, value, rules, 'value', warn);
      if (real !== undefined) newValue = real;
    }
    if (newKey === key && newValue === value) continue;
    if (newKey !== key && Object.hasOwn(map, newKey) && map[newKey] !== newValue) {
      warn(`${rules.what} ${key} translates to ${newKey}, which the object already has with another value; left unchanged`);
      continue;
    }
    if (newKey !== key) delete map[key];
    map[newKey] = newValue;
    changed = true;
  }
  return changed;
}

function lookup(dict: ReadonlyMap<string, string>, entry: string, rules: MapRules, part: 'key' | 'value', warn: (m: string) => void): string | undefined {
  const real = dict.get(entry);
  if (real === undefined) {
    warn(`no dictionary entry for ${rules.what} ${part} ${entry}; left unchanged`);
    return undefined;
  }
  // A translation that yields another placeholder would make the chain non-idempotent.
  if (real.startsWith(NEMU)) {
    warn(`dictionary entry ${entry} holds another nemu_ placeholder; left unchanged`);
    return undefined;
  }
  const ok = part === 'key' ? rules.validKey(real) : rules.validValue(real);
  if (!ok) {
    warn(`dictionary entry ${entry} is not a valid ${rules.what} ${part}; left unchanged`);
    return undefined;
  }
  return real;
}
