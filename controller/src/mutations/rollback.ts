/**
 * Rollback of a logged mutation.
 *
 * - Deployment: a skip rule for the Deployment and the rolled-back verbs is stored first (so
 *   the UPDATE the rollback causes is not mutated again), then the reverse patch is sent,
 *   guarded by `test` operations on every value the mutation wrote and on resourceVersion.
 *   If the object moved on since, nothing is changed and the answer is a 409 that says where.
 * - Pod: pods cannot be changed in place, so the owning workload gets a skip rule for the
 *   rolled-back verbs, then the pod (found by its `nemutator.io/mutation` label) is evicted,
 *   PodDisruptionBudgets respected; its replacement is created without those mutations.
 * - Labels the neighbour scorer wrote (verb `neighbours`, on a Pod or a workload): the reverse
 *   patch restores the previous labels in place, guarded like a Deployment's; a skip rule for
 *   the object (verb `neighbours`) is stored first so the scorer does not write them again.
 */
import fjp, { type Operation } from 'fast-json-patch';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { SkipRules } from '../admission/skip-rules.ts';
import { isRecord, MUTATION_LABEL, NEIGHBOURS_VERB, type Verb } from '../mutators/types.ts';
import type { ClusterClient } from './cluster.ts';
import { apiStatus, isLabelledKind } from './cluster.ts';
import type { MutationEntry, MutationLog } from './log.ts';

export interface RollbackDeps {
  cluster: ClusterClient | undefined;
  log: MutationLog;
  skipRules: SkipRules;
}

export interface RollbackResult {
  id: string;
  kind: string;
  namespace: string;
  name: string;
  action: 'patched' | 'evicted' | 'labels-restored';
  skipRule: { kind: string; name: string; verbs: string[] };
}

/** `test` operations for every value the forward patch wrote (removals cannot be tested). */
export function guards(forward: readonly Operation[]): Operation[] {
  return forward.flatMap((op) => (op.op === 'add' || op.op === 'replace' ? [{ op: 'test', path: op.path, value: op.value } as Operation] : []));
}

export async function rollback(id: string, user: string | undefined, deps: RollbackDeps): Promise<RollbackResult> {
  const entry = await deps.log.get(id);
  if (!entry)
    throw new NemuError(ErrorCodes.NOT_FOUND, `mutation ${id} is not in the mutation log; 'nemutator mutations list' shows the known ones`, { status: 404 });
  if (entry.rolledBack) throw new NemuError(ErrorCodes.CONFLICT, `mutation ${id} was already rolled back at ${entry.rolledBack.time}`, { status: 409 });
  if (!deps.cluster) {
    throw new NemuError(
      ErrorCodes.CONFIG,
      'rollback needs a Kubernetes cluster and this controller has none (local mode); start it with --kubeconfig <file> or run it in a pod',
      { status: 503 },
    );
  }
  const result = entry.verbs.includes(NEIGHBOURS_VERB)
    ? await rollbackLabels(entry, user, deps, deps.cluster)
    : entry.kind === 'Deployment'
      ? await rollbackDeployment(entry, user, deps, deps.cluster)
      : await rollbackPod(entry, user, deps, deps.cluster);
  await deps.log.update({ ...entry, rolledBack: { time: new Date().toISOString(), ...(user ? { user } : {}) } });
  return result;
}

/** Refuses (409) when the object no longer holds what the forward patch wrote. */
function checkGuards(current: unknown, tests: Operation[], what: string, id: string): void {
  for (const t of tests) {
    let ok = false;
    try {
      ok = fjp.applyOperation(structuredClone(current), structuredClone(t), true, false) !== undefined;
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new NemuError(
        ErrorCodes.CONFLICT,
        `${what} changed since mutation ${id}: ${t.path} no longer holds the mutated value; rollback refused, nothing was changed`,
        {
          status: 409,
        },
      );
    }
  }
}

/**
 * The in-place undo of a mutation (a Deployment's reverse patch, a neighbour-label restore):
 * refused (409) when the object no longer holds what the forward patch wrote; then the skip
 * rule that keeps Nemutator away from it; then the reverse patch, guarded by the same tests and
 * the resourceVersion read, so a change in between is a 409 and nothing is written.
 */
async function guardedRevert(
  entry: MutationEntry,
  target: { what: string; kind: string; name: string; current: Record<string, unknown>; verbs: Verb[]; user: string | undefined },
  deps: RollbackDeps,
  patch: (ops: Operation[]) => Promise<unknown>,
): Promise<void> {
  const { what, kind, name, current, verbs, user } = target;
  const tests = guards(entry.patch);
  checkGuards(current, tests, what, entry.id);
  await deps.skipRules.add({
    namespace: entry.namespace,
    kind,
    name,
    verbs,
    mutationId: entry.id,
    createdAt: new Date().toISOString(),
    ...(user ? { user } : {}),
  });
  const rv = isRecord(current.metadata) ? current.metadata.resourceVersion : undefined;
  const ops: Operation[] = [
    ...(typeof rv === 'string' ? [{ op: 'test', path: '/metadata/resourceVersion', value: rv } as Operation] : []),
    ...tests,
    ...entry.reversePatch,
  ];
  try {
    await patch(ops);
  } catch (e) {
    // client-node's apiserver errors carry the status in different places depending on the call
    const status = apiStatus(e) ?? (e as { apiStatus?: number }).apiStatus;
    if (status === 409 || status === 422) {
      throw new NemuError(ErrorCodes.CONFLICT, `${what} changed while rolling back mutation ${entry.id}; nothing was changed, retry the rollback`, {
        status: 409,
        cause: e,
      });
    }
    throw e;
  }
}

/** Neighbour labels: the previous labels back, in place, once the scorer is told to leave the object alone. */
async function rollbackLabels(entry: MutationEntry, user: string | undefined, deps: RollbackDeps, cluster: ClusterClient): Promise<RollbackResult> {
  const name = entry.name;
  if (!name || !isLabelledKind(entry.kind))
    throw new NemuError(ErrorCodes.BAD_REQUEST, `mutation ${entry.id} names no object whose labels can be restored`, { status: 400 });
  const kind = entry.kind;
  const what = `${kind.toLowerCase()} ${entry.namespace}/${name}`;
  const current = await cluster.readObject(kind, entry.namespace, name);
  const verbs = [NEIGHBOURS_VERB] as Verb[];
  await guardedRevert(entry, { what, kind, name, current, verbs, user }, deps, (ops) => cluster.patchObject(kind, entry.namespace, name, ops));
  return { id: entry.id, kind: entry.kind, namespace: entry.namespace, name, action: 'labels-restored', skipRule: { kind: entry.kind, name, verbs } };
}

async function rollbackDeployment(entry: MutationEntry, user: string | undefined, deps: RollbackDeps, cluster: ClusterClient): Promise<RollbackResult> {
  const name = entry.name;
  if (!name) throw new NemuError(ErrorCodes.BAD_REQUEST, `mutation ${entry.id} has no object name to roll back`, { status: 400 });
  if (entry.reversePatch.some((op) => op.path === '/spec/selector' || op.path.startsWith('/spec/selector/'))) {
    throw new NemuError(
      ErrorCodes.CONFLICT,
      `mutation ${entry.id} changed the selector of deployment ${entry.namespace}/${name}, and Kubernetes does not allow a selector to change; to undo it, delete the Deployment and create it again with nemutator.io/skip-mutation: "${entry.verbs.join(' ')}"`,
      { status: 409 },
    );
  }
  const current = await cluster.readDeployment(entry.namespace, name);
  const verbs = entry.verbs as Verb[];
  const what = `deployment ${entry.namespace}/${name}`;
  await guardedRevert(entry, { what, kind: 'Deployment', name, current, verbs, user }, deps, (ops) => cluster.patchDeployment(entry.namespace, name, ops));
  return { id: entry.id, kind: 'Deployment', namespace: entry.namespace, name, action: 'patched', skipRule: { kind: 'Deployment', name, verbs } };
}

async function rollbackPod(entry: MutationEntry, user: string | undefined, deps: RollbackDeps, cluster: ClusterClient): Promise<RollbackResult> {
  const pods = await cluster.podsWithLabel(entry.namespace, `${MUTATION_LABEL}=${entry.id}`);
  const pod = pods[0];
  const podName = pod && isRecord(pod.metadata) && typeof pod.metadata.name === 'string' ? pod.metadata.name : undefined;
  const target = entry.owner ?? (podName || entry.name ? { kind: 'Pod', name: (podName ?? entry.name)! } : undefined);
  if (!target) throw new NemuError(ErrorCodes.BAD_REQUEST, `mutation ${entry.id} names no pod and no owner to roll back`, { status: 400 });
  const verbs = entry.verbs as Verb[];
  await deps.skipRules.add({
    namespace: entry.namespace,
    kind: target.kind,
    name: target.name,
    verbs,
    mutationId: entry.id,
    createdAt: new Date().toISOString(),
    ...(user ? { user } : {}),
  });
  if (!podName) {
    throw new NemuError(
      ErrorCodes.NOT_FOUND,
      `no pod in ${entry.namespace} carries ${MUTATION_LABEL}=${entry.id} any more; the skip rule for ${target.kind} ${target.name} is stored, so new pods are not mutated with ${verbs.join(' ')}`,
      { status: 404 },
    );
  }
  try {
    await cluster.evictPod(entry.namespace, podName);
  } catch (e) {
    if (apiStatus(e) === 429) {
      throw new NemuError(
        ErrorCodes.CONFLICT,
        `pod ${entry.namespace}/${podName} cannot be evicted now: a PodDisruptionBudget allows no disruption; the skip rule is stored, retry the rollback later`,
        { status: 429, cause: e },
      );
    }
    throw e;
  }
  return { id: entry.id, kind: 'Pod', namespace: entry.namespace, name: podName, action: 'evicted', skipRule: { kind: target.kind, name: target.name, verbs } };
}
