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

function validToleration(t: unknown): t is Toleration {
  if (!isRecord(t) || Object.keys(t).some((k) => !FIELDS.has(k))) return false;
  if (t.key !== undefined && typeof t.key !== 'string') return false;
  if (t.value !== undefined && typeof t.value !== 'string') return false;
  if (t.operator !== undefined && t.operator !== 'Exists' && t.operator !== 'Equal') return false;
  if (t.effect !== undefined && !['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'].includes(t.effect as string)) return false;
  if (t.tolerationSeconds !== undefined && !Number.isInteger(t.tolerationSeconds)) return false;
  if (t.operator === 'Exists' && t.value) return false;
  return true;
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
    if (ns !== undefined && typeof ns !== 'string' && !(Array.isArray(ns) && ns.every((x) => typeof x === 'string'))) return `${TOLERATIONS_KEY} rule ${i}: match.namespace must be a name or a list of names`;
    if (match.labels !== undefined && !(isRecord(match.labels) && Object.values(match.labels).every((v) => typeof v === 'string'))) return `${TOLERATIONS_KEY} rule ${i}: match.labels must map strings to strings`;
    const bad = r.tolerations.findIndex((t) => !validToleration(t));
    if (bad !== -1) return `${TOLERATIONS_KEY} rule ${i}: toleration ${bad} is not a valid toleration`;
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
