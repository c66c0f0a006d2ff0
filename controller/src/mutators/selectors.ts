/**
 * `selectors`: a Deployment's `spec.selector.matchLabels` entries whose key is listed in the
 * dictionary's `nemu_selectors_replace_list` are translated like labels (key, value or both),
 * and the pod template's matching label gets the same translation, so the selector keeps
 * selecting the template. Only at CREATE: a Deployment's selector is immutable afterwards.
 *
 * `nemu_selectors_replace_list` is a JSON array of label keys (`["nemu_label_ab12", "app"]`)
 * or the same keys separated by spaces or commas.
 */
import { LABEL_RULES, qualifiedNameProblem, translateMap } from './metadata-map.ts';
import { isRecord, type KubeObject, type Mutator } from './types.ts';
import { editAt, type StringMap, templateOf } from './workload.ts';

export const SELECTORS_LIST_KEY = 'nemu_selectors_replace_list';

export function selectorLabels(object: KubeObject): StringMap {
  const spec = object.spec;
  if (!isRecord(spec) || !isRecord(spec.selector) || !isRecord(spec.selector.matchLabels)) return {};
  return spec.selector.matchLabels as StringMap;
}

export function parseReplaceList(text: string | undefined): string[] {
  if (!text) return [];
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
    } catch {
      // fall through to the word form
    }
  }
  return t.split(/[\s,]+/).filter(Boolean);
}

/**
 * Why a replace list cannot be used as written; undefined when it can. `parseReplaceList` is
 * lenient at admission (a broken JSON array falls back to words); a write is held to the form.
 */
export function replaceListProblem(text: string): string | undefined {
  const t = text.trim();
  let keys: unknown[];
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (!Array.isArray(v)) return 'it is not a JSON array';
      keys = v;
    } catch {
      return 'it begins with [ but is not a JSON array';
    }
  } else {
    keys = parseReplaceList(t);
  }
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'string') return `entry ${i} is not a string`;
    const problem = qualifiedNameProblem(k);
    if (problem) return `entry ${i} is not a label key: ${problem}`;
  }
  return undefined;
}

export const selectorsMutator: Mutator = {
  verb: 'selectors',
  keys(object, ctx) {
    if (ctx.kind !== 'Deployment') return [];
    const keys = new Set<string>([SELECTORS_LIST_KEY]);
    for (const [k, v] of Object.entries(selectorLabels(object))) {
      if (k.startsWith(LABEL_RULES.keyPrefix)) keys.add(k);
      if (typeof v === 'string' && v.startsWith(LABEL_RULES.valuePrefix)) keys.add(v);
    }
    return keys;
  },
  mutate(object, ctx) {
    if (ctx.kind !== 'Deployment' || ctx.operation !== 'CREATE') return object;
    const listed = new Set(parseReplaceList(ctx.dictionary.get(SELECTORS_LIST_KEY)));
    if (listed.size === 0) return object;
    const candidates = Object.entries(selectorLabels(object)).filter(([k]) => listed.has(k));
    if (candidates.length === 0) return object;
    return editAt(
      object,
      [
        ['spec', 'selector'],
        ['spec', 'template', 'metadata'],
      ],
      (draft) => {
        const selector = selectorLabels(draft);
        const tmpl = templateOf(draft);
        const tmplLabels = tmpl && isRecord(tmpl.metadata) && isRecord(tmpl.metadata.labels) ? (tmpl.metadata.labels as StringMap) : undefined;
        let changed = false;
        for (const [key, value] of candidates) {
          const one: StringMap = { [key]: value };
          if (!translateMap(one, LABEL_RULES, ctx.dictionary, ctx.warn)) continue;
          const [[newKey, newValue]] = Object.entries(one) as [[string, string]];
          if (newKey !== key && Object.hasOwn(selector, newKey)) {
            ctx.warn(`selector ${key} translates to ${newKey}, which the selector already has; left unchanged`);
            continue;
          }
          delete selector[key];
          selector[newKey] = newValue;
          if (tmplLabels && tmplLabels[key] === value) {
            delete tmplLabels[key];
            tmplLabels[newKey] = newValue;
          }
          changed = true;
        }
        return changed;
      },
    );
  },
};
