/**
 * Skip rules: verbs a workload is no longer mutated with, written by a rollback before the
 * rolled-back object is recreated (so the recreated one is not mutated again). Stored under
 * `skip-rules/<namespace>/<kind>/<name>`.
 *
 * A Pod is matched through its controlling owner; a Pod of a Deployment (owner ReplicaSet
 * `<deployment>-<pod-template-hash>`) also through the Deployment, without an API call.
 */
import { isRecord, type KubeObject, type Verb, type WorkloadKind } from '../mutators/types.ts';
import { controllerOf } from '../mutators/workload.ts';
import type { Store } from '../store/store.ts';

export interface SkipRule {
  namespace: string;
  kind: string;
  name: string;
  verbs: Verb[];
  /** The mutation whose rollback created the rule. */
  mutationId?: string;
  createdAt: string;
  user?: string;
}

const PREFIX = 'skip-rules/';

function key(namespace: string, kind: string, name: string): string {
  return `${PREFIX}${namespace}/${kind}/${name}`;
}

/** The workloads whose rules apply to this object. */
export function ruleTargets(kind: WorkloadKind, object: KubeObject): Array<{ kind: string; name: string }> {
  const meta = isRecord(object.metadata) ? object.metadata : {};
  if (kind === 'Deployment') return typeof meta.name === 'string' && meta.name ? [{ kind: 'Deployment', name: meta.name }] : [];
  const out: Array<{ kind: string; name: string }> = [];
  const owner = controllerOf(object);
  if (owner) {
    out.push(owner);
    const hash = isRecord(meta.labels) ? meta.labels['pod-template-hash'] : undefined;
    if (owner.kind === 'ReplicaSet' && typeof hash === 'string' && owner.name.endsWith(`-${hash}`)) {
      out.push({ kind: 'Deployment', name: owner.name.slice(0, -hash.length - 1) });
    }
  } else if (typeof meta.name === 'string' && meta.name) {
    out.push({ kind: 'Pod', name: meta.name });
  }
  return out;
}

export class SkipRules {
  /**
   * Every rule, in memory, when this process owns the store (embedded): reviews then read no
   * store at all. A shared store (several replicas) is read on every review instead, so a
   * rule written by another replica counts at once.
   */
  private cache: Promise<Map<string, SkipRule>> | undefined;

  constructor(private readonly store: Store) {}

  private cached(): Promise<Map<string, SkipRule>> | undefined {
    if (this.store.shared) return undefined;
    this.cache ??= this.store.list<SkipRule>(PREFIX).then((all) => new Map(all.map((e) => [e.key, e.value])));
    return this.cache;
  }

  async add(rule: SkipRule): Promise<void> {
    const k = key(rule.namespace, rule.kind, rule.name);
    const old = await this.store.get<SkipRule>(k);
    const verbs = [...new Set([...(old?.verbs ?? []), ...rule.verbs])];
    const value = { ...rule, verbs };
    await this.store.put(k, value);
    (await this.cached())?.set(k, value);
  }

  async remove(namespace: string, kind: string, name: string): Promise<boolean> {
    const k = key(namespace, kind, name);
    const had = (await this.store.get(k)) !== undefined;
    if (had) await this.store.del(k);
    (await this.cached())?.delete(k);
    return had;
  }

  async list(namespace?: string): Promise<SkipRule[]> {
    return (await this.store.list<SkipRule>(PREFIX + (namespace ? `${namespace}/` : ''))).map((r) => r.value);
  }

  /** Verbs skipped for this object by stored rules. */
  async verbsFor(kind: WorkloadKind, namespace: string, object: KubeObject): Promise<Verb[]> {
    const targets = ruleTargets(kind, object);
    if (targets.length === 0) return [];
    const cache = await this.cached();
    const rules = cache ? targets.map((t) => cache.get(key(namespace, t.kind, t.name))) : await Promise.all(targets.map((t) => this.store.get<SkipRule>(key(namespace, t.kind, t.name))));
    return rules.flatMap((r) => r?.verbs ?? []);
  }
}
