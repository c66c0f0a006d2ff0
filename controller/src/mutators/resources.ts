/**
 * `resources`: container requests from a recommendation source. The sources are asked in
 * order and the first answer wins: telemetry (plugged in later; skipped by the verb
 * `prom_metrics`) and then the ratio policy, `requests = limits ÷ ratio` per resource.
 *
 * The ratio policy only replaces requests that were not chosen by a person: a request that
 * is absent or equal to its limit (the apiserver defaults requests to limits). That also
 * makes it idempotent: once requests are below limits it has nothing more to say.
 */
import { formatQuantity, parseQuantity } from './quantity.ts';
import { type ContainerTarget, isRecord, type Mutator, type Recommendation, type RecommendationSource } from './types.ts';
import { containerEntries, containersOf, controllerOf, Draft, type StringMap } from './workload.ts';

/** Resources a ratio may apply to; extended resources (GPUs…) need requests equal to limits. */
export const RATIO_RESOURCES = ['cpu', 'memory', 'ephemeral-storage'] as const;

export type RatioPolicy = Partial<Record<(typeof RATIO_RESOURCES)[number], number>>;

/**
 * Parses the `resourceRatio` setting: empty (off), one number for cpu and memory (`2`), or
 * per resource (`cpu=4,memory=1.5`). Every ratio is ≥ 1. Throws a message naming the form.
 */
export function parseRatioPolicy(text: string): RatioPolicy {
  const t = text.trim();
  if (t === '' || t === '0') return {};
  const form = 'expected a number ≥ 1 (cpu and memory) or resource=ratio pairs such as cpu=4,memory=1.5';
  const num = (s: string): number => {
    const n = Number(s);
    if (!/^\d+(\.\d+)?$/.test(s) || !(n >= 1)) throw new Error(`resourceRatio ${JSON.stringify(text)}: ${form}`);
    return n;
  };
  if (!t.includes('=')) {
    const n = num(t);
    return { cpu: n, memory: n };
  }
  const policy: RatioPolicy = {};
  for (const pair of t.split(',')) {
    const [r, v] = pair.split('=').map((s) => s.trim());
    if (!(RATIO_RESOURCES as readonly string[]).includes(r ?? '') || v === undefined)
      throw new Error(`resourceRatio ${JSON.stringify(text)}: ${form} (resources: ${RATIO_RESOURCES.join(', ')})`);
    policy[r as keyof RatioPolicy] = num(v);
  }
  return policy;
}

export class RatioSource implements RecommendationSource {
  readonly name = 'ratio';
  constructor(private readonly policy: RatioPolicy) {}

  recommend(target: ContainerTarget): Recommendation | { reason: string } {
    const requests: StringMap = {};
    for (const [resource, ratio] of Object.entries(this.policy)) {
      const limit = parseQuantity(target.limits[resource]);
      if (limit === undefined || limit <= 0) continue;
      const current = target.requests[resource];
      if (current !== undefined && parseQuantity(current) !== limit) continue; // chosen by a person
      requests[resource] = formatQuantity(resource, limit / ratio);
    }
    return Object.keys(requests).length > 0 ? { requests } : { reason: 'no limits to derive requests from' };
  }
}

export const resourcesMutator: Mutator = {
  verb: 'resources',
  keys: () => [],
  mutate(object, ctx) {
    if (ctx.recommendations.length === 0) return object;
    const meta = isRecord(object.metadata) ? object.metadata : {};
    const owner = ctx.kind === 'Deployment' ? (typeof meta.name === 'string' ? { kind: 'Deployment', name: meta.name } : undefined) : controllerOf(object);
    const wanted = new Map<number, StringMap>();
    const warned = new Set<string>();
    containersOf(object, ctx.kind).forEach((c, i) => {
      const res = isRecord(c.resources) ? c.resources : {};
      const target: ContainerTarget = {
        namespace: ctx.namespace,
        kind: ctx.kind,
        container: String(c.name ?? i),
        limits: isRecord(res.limits) ? (res.limits as StringMap) : {},
        requests: isRecord(res.requests) ? (res.requests as StringMap) : {},
      };
      if (owner) target.owner = owner;
      for (const source of ctx.recommendations) {
        const r = source.recommend(target);
        if ('requests' in r) {
          const diff = Object.entries(r.requests).some(([k, v]) => parseQuantity(target.requests[k]) !== parseQuantity(v) || target.requests[k] === undefined);
          if (diff) wanted.set(i, r.requests);
          break;
        }
        // a reason carrying an error code (e.g. Prometheus unreachable) is a warning, said once per object
        if (r.reason.startsWith('NEMU_ERR_') && !warned.has(r.reason)) {
          warned.add(r.reason);
          ctx.warn(`${source.name}: ${r.reason}; requests left as they are`);
        }
      }
    });
    if (wanted.size === 0) return object;
    const draft = new Draft(object, ctx.drafts);
    containerEntries(object, ctx.kind).forEach(({ path, container: c }, i) => {
      const req = wanted.get(i);
      if (!req) return;
      if (!isRecord(c.resources)) draft.at(path).resources = {};
      const res = draft.at([...path, 'resources']);
      res.requests = { ...(isRecord(res.requests) ? res.requests : {}), ...req };
    });
    return draft.result();
  },
};
