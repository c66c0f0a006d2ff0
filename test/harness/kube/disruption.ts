// PodDisruptionBudget arithmetic (the disruption controller) and the pods/eviction
// subresource (pkg/registry/core/pod/storage/eviction.go): an eviction that would take a
// budget below its healthy minimum is refused with 429 TooManyRequests.
import type { Registry, RequestContext } from './registry.ts';
import { type LabelSelectorObject, matchesLabelSelectorObject } from './selectors.ts';
import { badRequest, failure, type Status, success, tooManyRequests } from './status.ts';
import type { KubeObject } from './store.ts';
import { clone } from './store.ts';

export interface PdbStatus {
  observedGeneration?: number;
  disruptionsAllowed: number;
  currentHealthy: number;
  desiredHealthy: number;
  expectedPods: number;
  disruptedPods?: Record<string, string>;
  conditions?: Record<string, unknown>[];
}

export function isPodReady(pod: KubeObject): boolean {
  if (pod.metadata.deletionTimestamp) return false;
  const status = pod['status'] as { phase?: string; conditions?: { type: string; status: string }[] } | undefined;
  if (status?.phase !== 'Running') return false;
  return (status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');
}

function resolveIntOrPercent(value: unknown, total: number, roundUp: boolean): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+)%$/.exec(String(value));
  if (!m) return Number(value) || 0;
  const exact = (Number(m[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

export function computePdbStatus(pdb: KubeObject, pods: KubeObject[]): PdbStatus {
  const spec = (pdb['spec'] ?? {}) as { selector?: LabelSelectorObject; minAvailable?: number | string; maxUnavailable?: number | string };
  const matching = pods.filter((p) => !p.metadata.deletionTimestamp && matchesLabelSelectorObject(spec.selector, p.metadata.labels));
  const expectedPods = matching.length;
  const currentHealthy = matching.filter(isPodReady).length;
  let desiredHealthy: number;
  if (spec.maxUnavailable !== undefined) {
    desiredHealthy = Math.max(0, expectedPods - resolveIntOrPercent(spec.maxUnavailable, expectedPods, true));
  } else if (spec.minAvailable !== undefined) {
    desiredHealthy = resolveIntOrPercent(spec.minAvailable, expectedPods, true);
  } else {
    desiredHealthy = expectedPods; // maxUnavailable 0 semantics: nothing may be disrupted.
  }
  const disruptionsAllowed = Math.max(0, currentHealthy - desiredHealthy);
  const old = (pdb['status'] ?? {}) as { conditions?: Record<string, unknown>[] };
  const sufficient = disruptionsAllowed > 0;
  const previous = old.conditions?.find((c) => c['type'] === 'DisruptionAllowed');
  const status = sufficient ? 'True' : 'False';
  return {
    observedGeneration: pdb.metadata.generation,
    disruptionsAllowed,
    currentHealthy,
    desiredHealthy,
    expectedPods,
    conditions: [
      {
        type: 'DisruptionAllowed',
        status,
        reason: sufficient ? 'SufficientPods' : 'InsufficientPods',
        message: '',
        observedGeneration: pdb.metadata.generation,
        lastTransitionTime: previous && previous['status'] === status ? previous['lastTransitionTime'] : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    ],
  };
}

/** Recomputes and stores every PDB status in a namespace (the disruption controller's loop). */
export function refreshPdbs(registry: Registry, namespace: string): void {
  const pdbs = registry.store.list(registry.resource('policy', 'poddisruptionbudgets'), namespace);
  if (pdbs.length === 0) return;
  const pods = registry.store.list(registry.resource('', 'pods'), namespace);
  const alive = new Set(pods.map((p) => p.metadata.name));
  for (const pdb of pdbs) {
    const previous = (pdb['status'] ?? {}) as PdbStatus;
    const next: PdbStatus = computePdbStatus(pdb, pods);
    const disrupted = Object.entries(previous.disruptedPods ?? {}).filter(([pod]) => alive.has(pod));
    if (disrupted.length > 0) next.disruptedPods = Object.fromEntries(disrupted);
    if (JSON.stringify(next) === JSON.stringify(pdb['status'])) continue;
    const updated = clone(pdb);
    updated['status'] = next;
    try {
      registry.store.update(registry.resource('policy', 'poddisruptionbudgets'), updated, pdb.metadata.resourceVersion);
    } catch {
      // Raced with a writer: the next pod event recomputes it.
    }
  }
}

/** POST pods/<name>/eviction. */
export async function evictPod(registry: Registry, namespace: string, name: string, body: unknown, ctx: RequestContext): Promise<Status> {
  const podsR = registry.resource('', 'pods');
  const eviction = (body ?? {}) as KubeObject & {
    deleteOptions?: { preconditions?: { uid?: string; resourceVersion?: string }; gracePeriodSeconds?: number; dryRun?: string[] };
  };
  if (eviction.kind !== undefined && eviction.kind !== 'Eviction') throw badRequest(`expected Eviction, got ${String(eviction.kind)}`);
  if (eviction.metadata?.name && eviction.metadata.name !== name) {
    throw badRequest(`name in URL does not match name in Eviction object`);
  }
  const pod = registry.get(podsR, namespace, name);
  const dryRun = !!ctx.dryRun || (eviction.deleteOptions?.dryRun ?? []).includes('All');
  await registry.admitSubresource(
    podsR,
    'eviction',
    { group: 'policy', version: 'v1', kind: 'Eviction' },
    'CREATE',
    namespace,
    name,
    { ...eviction, apiVersion: eviction.apiVersion ?? 'policy/v1', kind: 'Eviction', metadata: { ...(eviction.metadata ?? {}), name, namespace } },
    { ...ctx, dryRun },
  );
  const deleteOpts = { preconditions: eviction.deleteOptions?.preconditions, gracePeriodSeconds: eviction.deleteOptions?.gracePeriodSeconds };
  const phase = (pod['status'] as { phase?: string } | undefined)?.phase;
  // Pods that are not running, or already terminating, are deleted without consulting budgets.
  if (phase === 'Succeeded' || phase === 'Failed' || phase === 'Pending' || pod.metadata.deletionTimestamp) {
    if (!dryRun) await registry.delete(podsR, namespace, name, deleteOpts, ctx);
    return success(201);
  }
  const pdbR = registry.resource('policy', 'poddisruptionbudgets');
  const pdbs = registry.store
    .list(pdbR, namespace)
    .filter((pdb) => matchesLabelSelectorObject((pdb['spec'] as { selector?: LabelSelectorObject } | undefined)?.selector, pod.metadata.labels));
  if (pdbs.length > 1) {
    throw failure(500, 'InternalError', 'This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.');
  }
  const pdb = pdbs[0];
  if (pdb) {
    const pods = registry.store.list(podsR, namespace);
    const status = computePdbStatus(pdb, pods);
    const stored = (pdb['status'] ?? {}) as PdbStatus;
    const disrupted = Object.keys(stored.disruptedPods ?? {}).filter((p) => p !== name).length;
    const allowed = status.disruptionsAllowed - disrupted;
    const unhealthyPolicy = (pdb['spec'] as { unhealthyPodEvictionPolicy?: string } | undefined)?.unhealthyPodEvictionPolicy ?? 'IfHealthyBudget';
    const podHealthy = isPodReady(pod);
    const mayEvictUnhealthy = !podHealthy && (unhealthyPolicy === 'AlwaysAllow' || status.currentHealthy >= status.desiredHealthy);
    if (!mayEvictUnhealthy && allowed <= 0) {
      throw tooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", [
        {
          reason: 'DisruptionBudget',
          message: `The disruption budget ${pdb.metadata.name} needs ${status.desiredHealthy} healthy pods and has ${status.currentHealthy} currently`,
        },
      ]);
    }
    if (!dryRun && podHealthy) {
      // Record the disruption so concurrent evictions see a smaller budget.
      const next = clone(pdb);
      next['status'] = {
        ...status,
        disruptionsAllowed: Math.max(0, status.disruptionsAllowed - 1),
        disruptedPods: { ...(stored.disruptedPods ?? {}), [name]: new Date().toISOString() },
      };
      registry.store.update(pdbR, next, pdb.metadata.resourceVersion);
    }
  }
  if (!dryRun) await registry.delete(podsR, namespace, name, deleteOpts, ctx);
  return success(201);
}
