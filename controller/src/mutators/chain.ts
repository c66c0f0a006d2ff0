/**
 * The mutator chain, in its fixed, documented order:
 *
 *   1. selectors    Deployment selector entries listed in nemu_selectors_replace_list (+ template labels)
 *   2. labels       nemu_label_<hash> keys, nemu_label_value_<hash> values
 *   3. annotations  nemu_anno_<hash> keys, nemu_anno_value_<hash> values
 *   4. tolerations  rules from nemu_tolerations (matched against the translated labels)
 *   5. env          nemu_env_<hash> (and nemu_<hash>) environment values
 *   6. image        nemu_image_<name> tag/digest enforcement
 *   7. resources    requests from recommendations (telemetry, then limits ÷ ratio)
 *   8. secrets      vault: references (env, after env resolved nemu_env_<hash>; secret-file
 *                   annotations) → the nemutator.io/secrets record, agent socket, launcher
 *   9. scheduler    (when optInSchedulerName is set, scheduler.ts) spec.schedulerName for opted-in pods
 *
 * Selectors come before labels so that a selector and the template label it selects are
 * translated together; tolerations come after labels so rules match the real labels.
 * Secrets come last: they see the references env resolved, and the nemutator-init container
 * they add is never touched by image or resources (which would break idempotence).
 * Every mutator's dictionary keys are gathered before the chain runs: one round trip.
 */
import { annotationsMutator } from './annotations.ts';
import { envMutator } from './env.ts';
import { imageMutator } from './image.ts';
import { labelsMutator } from './labels.ts';
import { resourcesMutator } from './resources.ts';
import { secretsMutator } from './secrets.ts';
import { selectorsMutator } from './selectors.ts';
import { tolerationsMutator } from './tolerations.ts';
import { DraftScope, type KubeObject, type MutationContext, type Mutator, type Verb } from './types.ts';

export const DEFAULT_CHAIN: readonly Mutator[] = [
  selectorsMutator,
  labelsMutator,
  annotationsMutator,
  tolerationsMutator,
  envMutator,
  imageMutator,
  resourcesMutator,
  secretsMutator,
];

export interface ChainResult {
  object: KubeObject;
  /** Verbs whose mutator changed something, in chain order. */
  applied: Verb[];
  warnings: string[];
  /** Mutators that threw: skipped, their change not made. */
  failed: Verb[];
}

/** Every dictionary key the active mutators may read for this object. */
export function chainKeys(
  chain: readonly Mutator[],
  object: KubeObject,
  ctx: Pick<MutationContext, 'kind' | 'namespace'>,
  skipped: ReadonlySet<Verb> = new Set(),
): string[] {
  const keys = new Set<string>();
  for (const m of chain) {
    if (skipped.has(m.verb)) continue;
    try {
      for (const k of m.keys(object, ctx)) keys.add(k);
    } catch {
      // a mutator that cannot read this object fails again, and is reported, when it runs
    }
  }
  return [...keys];
}

export function runChain(
  chain: readonly Mutator[],
  object: KubeObject,
  ctx: Omit<MutationContext, 'warn' | 'drafts'>,
  skipped: ReadonlySet<Verb> = new Set(),
): ChainResult {
  // Mutators of one run share their copies (a Draft changes in place what an earlier mutator
  // of this run copied), so a mutator that throws halfway may leave a change half made in
  // them. The run then starts again from the caller's object without that mutator: the rare
  // failure costs a second run, and every run that succeeds copies each object once.
  const failures = new Map<Verb, string>();
  for (;;) {
    const run = runOnce(chain, object, ctx, skipped, failures);
    if (run.threw === undefined) return { object: run.object, applied: run.applied, warnings: run.warnings, failed: [...failures.keys()] };
    failures.set(run.threw.verb, `nemutator ${run.threw.verb}: skipped, the mutator failed on this object (${run.threw.message})`);
  }
}

function runOnce(
  chain: readonly Mutator[],
  object: KubeObject,
  ctx: Omit<MutationContext, 'warn' | 'drafts'>,
  skipped: ReadonlySet<Verb>,
  failures: ReadonlyMap<Verb, string>,
): { object: KubeObject; applied: Verb[]; warnings: string[]; threw?: { verb: Verb; message: string } } {
  const warnings: string[] = [];
  const applied: Verb[] = [];
  const drafts = new DraftScope();
  let current = object;
  let verb: Verb | undefined;
  // One context for the whole run; `warn` names whichever mutator is running.
  const context: MutationContext = { ...ctx, drafts, warn: (message: string) => void warnings.push(`nemutator ${verb}: ${message}`) };
  for (const m of chain) {
    if (skipped.has(m.verb)) continue;
    const failure = failures.get(m.verb);
    if (failure !== undefined) {
      warnings.push(failure);
      continue;
    }
    verb = m.verb;
    const edits = drafts.edits;
    try {
      const next = m.mutate(current, context);
      // A Draft that only changed this run's own copies hands back the same root: its edits count.
      if (next !== current || drafts.edits !== edits) {
        applied.push(m.verb);
        current = next;
      }
    } catch (e) {
      return { object, applied, warnings, threw: { verb: m.verb, message: (e as Error).message } };
    }
  }
  return { object: current, applied, warnings };
}
