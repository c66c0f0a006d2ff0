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
   * Every rule, in memory: reviews read no store at all. The embedded store is owned by this
   * process, so the copy is always current. A shared store (Redis, several replicas) is
   * watched: every replica's writes under `skip-rules/` reload the copy, and while the watch
   * is not live (connecting, Redis down) reviews read the store on every review instead, so
   * a rule written by another replica counts at once either way.
   */
  private cache: Promise<Map<string, SkipRule>> | undefined;
  private live: boolean;
  private readonly unwatch: (() => void) | undefined;

  constructor(private readonly store: Store) {
    this.live = !store.shared;
    this.unwatch = store.shared
      ? store.watch?.(PREFIX, {
          changed: () => {
            if (this.live) this.cache = this.load();
          },
          live: (live) => {
            this.live = live;
            this.cache = live ? this.load() : undefined;
          },
        })
      : undefined;
  }

  private load(): Promise<Map<string, SkipRule>> {
    const loading = this.store.list<SkipRule>(PREFIX).then((all) => new Map(all.map((e) => [e.key, e.value])));
    // A failed load is not kept: the next review reads the store and the next notice reloads.
    loading.catch(() => {
      if (this.cache === loading) this.cache = undefined;
    });
    return loading;
  }

  private cached(): Promise<Map<string, SkipRule>> | undefined {
    if (!this.live) return undefined;
    this.cache ??= this.load();
    return this.cache;
  }

  /** Stops watching a shared store. */
  close(): void {
    this.unwatch?.();
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
    const rules = cache
      ? targets.map((t) => cache.get(key(namespace, t.kind, t.name)))
      : await Promise.all(targets.map((t) => this.store.get<SkipRule>(key(namespace, t.kind, t.name))));
    return rules.flatMap((r) => r?.verbs ?? []);
  }
}
