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
import type { KubeObject, MutationContext, Mutator, Verb } from './types.ts';

export const DEFAULT_CHAIN: readonly Mutator[] = [selectorsMutator, labelsMutator, annotationsMutator, tolerationsMutator, envMutator, imageMutator, resourcesMutator, secretsMutator];

export interface ChainResult {
  object: KubeObject;
  /** Verbs whose mutator changed something, in chain order. */
  applied: Verb[];
  warnings: string[];
  /** Mutators that threw: skipped, their change not made. */
  failed: Verb[];
}

/** Every dictionary key the active mutators may read for this object. */
export function chainKeys(chain: readonly Mutator[], object: KubeObject, ctx: Pick<MutationContext, 'kind' | 'namespace'>, skipped: ReadonlySet<Verb> = new Set()): string[] {
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

export function runChain(chain: readonly Mutator[], object: KubeObject, ctx: Omit<MutationContext, 'warn'>, skipped: ReadonlySet<Verb> = new Set()): ChainResult {
  const warnings: string[] = [];
  const applied: Verb[] = [];
  const failed: Verb[] = [];
  let current = object;
  let verb: Verb | undefined;
  // One context for the whole run; `warn` names whichever mutator is running.
  const context: MutationContext = { ...ctx, warn: (message: string) => void warnings.push(`nemutator ${verb}: ${message}`) };
  for (const m of chain) {
    if (skipped.has(m.verb)) continue;
    verb = m.verb;
    try {
      const next = m.mutate(current, context);
      if (next !== current) {
        applied.push(m.verb);
        current = next;
      }
    } catch (e) {
      failed.push(m.verb);
      warnings.push(`nemutator ${m.verb}: skipped, the mutator failed on this object (${(e as Error).message})`);
    }
  }
  return { object: current, applied, warnings, failed };
}
