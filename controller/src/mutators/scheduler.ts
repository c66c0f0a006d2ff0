/**
 * `scheduler`: opting in to the Nemutator-aware scheduler (manifests/components/scheduler, a
 * second kube-scheduler whose configuration names Nemutator's extender). Pods of a namespace
 * or a workload labelled `nemutator.io/scheduler: enabled` get `spec.schedulerName` set to it;
 * a Deployment so labelled gets it in its pod template, so its pods are born with it.
 *
 * Opting out wins: `nemutator.io/scheduler: disabled` on a pod (its template) or a Deployment
 * keeps it with the default scheduler in an opted-in namespace. A pod that already names a
 * scheduler other than `default-scheduler` is never changed: someone chose it. On by
 * configuration only (`optInSchedulerName`): without the second scheduler running, an opted-in
 * pod would stay Pending.
 */
import { isRecord, type KubeObject, type MutationContext, type Mutator } from './types.ts';
import { Draft, podLabelsOf, podSpecOf } from './workload.ts';

export const SCHEDULER_OPT_IN_LABEL = 'nemutator.io/scheduler';
export const OPT_IN = 'enabled';
export const OPT_OUT = 'disabled';
export const DEFAULT_SCHEDULER = 'default-scheduler';

/** The opt-in decision, nearest first: the pod (template), the Deployment, the namespace. */
export function optedIn(object: KubeObject, ctx: Pick<MutationContext, 'kind' | 'namespaceLabels'>): boolean {
  const own = isRecord(object.metadata) && isRecord(object.metadata.labels) ? (object.metadata.labels as Record<string, unknown>) : {};
  const choices = [
    podLabelsOf(object, ctx.kind)[SCHEDULER_OPT_IN_LABEL],
    ctx.kind === 'Deployment' ? own[SCHEDULER_OPT_IN_LABEL] : undefined,
    ctx.namespaceLabels?.[SCHEDULER_OPT_IN_LABEL],
  ];
  for (const c of choices) {
    if (c === OPT_IN) return true;
    if (c === OPT_OUT) return false;
  }
  return false;
}

export function schedulerMutator(schedulerName: string): Mutator {
  return {
    verb: 'scheduler',
    keys: () => [],
    mutate(object, ctx) {
      const spec = podSpecOf(object, ctx.kind);
      if (!spec || !optedIn(object, ctx)) return object;
      const current = spec.schedulerName;
      if (current === schedulerName) return object;
      if (typeof current === 'string' && current !== '' && current !== DEFAULT_SCHEDULER) {
        ctx.warn(`the pod names scheduler ${JSON.stringify(current)}; left with it (the opt-in only replaces ${DEFAULT_SCHEDULER})`);
        return object;
      }
      const draft = new Draft(object, ctx.drafts);
      draft.at(ctx.kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec']).schedulerName = schedulerName;
      return draft.result();
    },
  };
}

/** The chain with the opt-in mutator last, when a scheduler name is configured. */
export function withSchedulerOptIn(chain: readonly Mutator[], schedulerName: string): readonly Mutator[] {
  return schedulerName ? [...chain, schedulerMutator(schedulerName)] : chain;
}
