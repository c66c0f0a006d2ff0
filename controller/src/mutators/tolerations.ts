/**
 * `tolerations`: rules from the dictionary key `nemu_tolerations` add tolerations to pods.
 * The value is a JSON array of rules:
 *
 *   [{ "match": { "namespace": "batch", "labels": { "tier": "gpu" } },
 *      "tolerations": [{ "key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule" }] }]
 *
 * `match.namespace` (a name or a list of names) and `match.labels` (every pair present on the
 * pod, after label translation) are both optional; an empty match applies everywhere. A
 * toleration the pod already has is not added twice.
 */
import { labelValueProblem, qualifiedNameProblem } from './metadata-map.ts';
import { isRecord, type Mutator } from './types.ts';
import { Draft, jsonClone, podLabelsOf, podSpecOf } from './workload.ts';

export const TOLERATIONS_KEY = 'nemu_tolerations';

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: '' | 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface TolerationRule {
  match: { namespace?: string | string[]; labels?: Record<string, string> };
  tolerations: Toleration[];
}

const FIELDS = new Set(['key', 'operator', 'value', 'effect', 'tolerationSeconds']);
const EFFECTS = ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'];

/**
 * Why a toleration is not one the API server accepts in a pod (its validation of
 * `spec.tolerations`, so an added toleration cannot make the pod invalid); undefined when it is.
 */
export function tolerationProblem(t: unknown): string | undefined {
  if (!isRecord(t)) return 'it is not an object';
  const extra = Object.keys(t).find((k) => !FIELDS.has(k));
  if (extra !== undefined) return `unknown field ${JSON.stringify(extra.slice(0, 32))} (fields: ${[...FIELDS].join(', ')})`;
  if (t.key !== undefined && typeof t.key !== 'string') return 'key must be a string';
  if (t.value !== undefined && typeof t.value !== 'string') return 'value must be a string';
  if (t.operator !== undefined && t.operator !== 'Exists' && t.operator !== 'Equal') return 'operator must be Exists or Equal';
  if (t.effect !== undefined && !EFFECTS.includes(t.effect as string)) return 'effect must be NoSchedule, PreferNoSchedule, NoExecute or empty';
  if (t.tolerationSeconds !== undefined && !Number.isSafeInteger(t.tolerationSeconds)) return 'tolerationSeconds must be an integer';
  if (t.tolerationSeconds !== undefined && t.effect !== 'NoExecute') return 'tolerationSeconds needs effect NoExecute';
  if (t.key) {
    const problem = qualifiedNameProblem(t.key);
    if (problem) return `key is not a label key: ${problem}`;
  } else if (t.operator !== 'Exists') {
    return 'operator must be Exists when key is empty (that tolerates every taint)';
  }
  if (t.operator === 'Exists' && t.value) return 'value must be empty when operator is Exists';
  if (t.value) {
    const problem = labelValueProblem(t.value);
    if (problem) return `value is not a label value: ${problem}`;
  }
  return undefined;
}

/** Parses the rule document; a reason string when it is not one. */
export function parseRules(text: string): TolerationRule[] | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return `${TOLERATIONS_KEY} is not JSON; expected [{"match": {...}, "tolerations": [...]}]`;
  }
  if (!Array.isArray(doc)) return `${TOLERATIONS_KEY} must be a JSON array of rules`;
  const rules: TolerationRule[] = [];
  for (const [i, r] of doc.entries()) {
    if (!isRecord(r) || !Array.isArray(r.tolerations)) return `${TOLERATIONS_KEY} rule ${i} has no "tolerations" array`;
    const match = r.match ?? {};
    if (!isRecord(match)) return `${TOLERATIONS_KEY} rule ${i}: "match" must be an object`;
    const ns = match.namespace;
    if (ns !== undefined && typeof ns !== 'string' && !(Array.isArray(ns) && ns.every((x) => typeof x === 'string')))
      return `${TOLERATIONS_KEY} rule ${i}: match.namespace must be a name or a list of names`;
    if (match.labels !== undefined && !(isRecord(match.labels) && Object.values(match.labels).every((v) => typeof v === 'string')))
      return `${TOLERATIONS_KEY} rule ${i}: match.labels must map strings to strings`;
    for (const [j, t] of r.tolerations.entries()) {
      const problem = tolerationProblem(t);
      if (problem) return `${TOLERATIONS_KEY} rule ${i}: toleration ${j} is not a valid toleration: ${problem}`;
    }
    rules.push({ match: match as TolerationRule['match'], tolerations: r.tolerations as Toleration[] });
  }
  return rules;
}

/** Same toleration, as the scheduler sees it (operator defaults to Equal). */
export function tolerationId(t: Toleration): string {
  // NUL cannot occur in a key, value or effect, so the fields cannot run into each other.
  return `${t.key ?? ''}\0${t.operator ?? 'Equal'}\0${t.value ?? ''}\0${t.effect ?? ''}\0${t.tolerationSeconds ?? ''}`;
}

// Parsing is done once per distinct document, not once per review.
const parsed = new Map<string, TolerationRule[] | string>();
function rulesFor(text: string): TolerationRule[] | string {
  let r = parsed.get(text);
  if (r === undefined) {
    if (parsed.size > 64) parsed.clear();
    r = parseRules(text);
    parsed.set(text, r);
  }
  return r;
}

export const tolerationsMutator: Mutator = {
  verb: 'tolerations',
  keys: () => [TOLERATIONS_KEY],
  mutate(object, ctx) {
    const text = ctx.dictionary.get(TOLERATIONS_KEY);
    if (text === undefined) return object;
    const rules = rulesFor(text);
    if (typeof rules === 'string') {
      ctx.warn(rules);
      return object;
    }
    const spec = podSpecOf(object, ctx.kind);
    if (!spec) return object;
    const labels = podLabelsOf(object, ctx.kind);
    const have = new Set(Array.isArray(spec.tolerations) ? spec.tolerations.filter(isRecord).map((t) => tolerationId(t as Toleration)) : []);
    const add: Toleration[] = [];
    for (const rule of rules) {
      const ns = rule.match.namespace;
      if (ns !== undefined && !(Array.isArray(ns) ? ns.includes(ctx.namespace) : ns === ctx.namespace)) continue;
      if (rule.match.labels && !Object.entries(rule.match.labels).every(([k, v]) => labels[k] === v)) continue;
      for (const t of rule.tolerations) {
        const id = tolerationId(t);
        if (have.has(id)) continue;
        have.add(id);
        add.push(jsonClone(t));
      }
    }
    if (add.length === 0) return object;
    const draft = new Draft(object, ctx.drafts);
    const s = draft.at(ctx.kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec']);
    s.tolerations = [...(Array.isArray(spec.tolerations) ? spec.tolerations : []), ...add];
    return draft.result();
  },
};
