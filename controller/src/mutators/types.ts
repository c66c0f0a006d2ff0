/**
 * The vocabulary of the mutator chain. A mutator is a pure function `(object, context) →
 * object` named by its skip verb. It never writes JSON pointers: the chain diffs the result.
 * It returns the very object it was given when it has nothing to change.
 */

/** A Kubernetes object as JSON (Pod or Deployment here). */
export type KubeObject = Record<string, unknown>;

/** Kinds the chain understands. Anything else is admitted unchanged. */
export type WorkloadKind = 'Pod' | 'Deployment';

/** Where telemetry-driven recommendations come from; admission never waits on it (cached, synchronous). */
export interface RecommendationSource {
  readonly name: string;
  /** Requests for one container, or a reason why there is none yet. */
  recommend(target: ContainerTarget): Recommendation | { reason: string };
}

export interface ContainerTarget {
  namespace: string;
  kind: WorkloadKind;
  /** The workload that owns the pod (Deployment name, ReplicaSet name…) or the object's own name. */
  owner?: { kind: string; name: string };
  container: string;
  limits: Record<string, string>;
  requests: Record<string, string>;
}

export interface Recommendation {
  requests: Record<string, string>;
}

/** Copies made by the mutators of one chain run, and how many edits they asked for. */
export class DraftScope {
  readonly owned = new Set<unknown>();
  edits = 0;
}

export interface MutationContext {
  kind: WorkloadKind;
  operation: 'CREATE' | 'UPDATE';
  namespace: string;
  /** Values of the dictionary keys that exist, fetched once for the whole review. */
  dictionary: ReadonlyMap<string, string>;
  /** Telemetry first (unless `prom_metrics` is skipped), then the ratio policy. */
  recommendations: readonly RecommendationSource[];
  /** The object before this operation (UPDATE only). */
  oldObject?: KubeObject;
  /** The namespace's labels, from the namespace informer (absent without a cluster or before its first list). */
  namespaceLabels?: Readonly<Record<string, string>>;
  /** Reasons are values: what a mutator did not do, and why; they become AdmissionReview warnings. */
  warn(message: string): void;
  /**
   * Set by the chain: what this run of the chain has copied already. A `Draft` made with it
   * changes those copies in place instead of copying them again; nothing the caller passed
   * in is ever changed. Absent when a mutator runs alone: every Draft copies what it changes.
   */
  drafts?: DraftScope;
}

export interface Mutator {
  /** The skip verb that turns this mutator off. */
  readonly verb: Verb;
  /** Dictionary keys this mutator may read for this object (gathered for one round trip). */
  keys(object: KubeObject, ctx: Pick<MutationContext, 'kind' | 'namespace'>): Iterable<string>;
  mutate(object: KubeObject, ctx: MutationContext): KubeObject;
}

/** Every verb `nemutator.io/skip-mutation` knows. */
export const VERBS = [
  'selectors',
  'labels',
  'annotations',
  'tolerations',
  'env',
  'image',
  'resources',
  'secrets',
  'patch',
  'containers',
  'prom_metrics',
  'scheduler',
  'neighbours',
] as const;
export type Verb = (typeof VERBS)[number];

/**
 * Verbs that stand for others: `containers` skips every container-level mutator; `prom_metrics`
 * skips the telemetry (Prometheus) recommendation source so resources fall back to the ratio.
 */
export const VERB_ALIASES: Partial<Record<Verb, readonly Verb[]>> = {
  containers: ['env', 'image', 'resources', 'secrets'],
};

/** Not a mutator: the neighbour scorer's labels (controller/src/scheduler/neighbours-labels.ts) skip objects that name it. */
export const NEIGHBOURS_VERB = 'neighbours';

export const SKIP_ANNOTATION = 'nemutator.io/skip';
export const SKIP_MUTATION_ANNOTATION = 'nemutator.io/skip-mutation';
/** Pods mutated by nemutator carry the id of their mutation-log entry (rollback finds them by it). */
export const MUTATION_LABEL = 'nemutator.io/mutation';

export interface SkipVerbs {
  verbs: Set<Verb>;
  unknown: string[];
}

/** Parses a space- (or comma-) separated verb list; aliases expand, unknown verbs are reported. */
export function parseSkipVerbs(text: string | undefined, into: SkipVerbs = { verbs: new Set(), unknown: [] }): SkipVerbs {
  if (!text) return into;
  for (const word of text.split(/[\s,]+/)) {
    if (word === '') continue;
    const verb = word.toLowerCase() as Verb;
    if (!(VERBS as readonly string[]).includes(verb)) {
      into.unknown.push(word);
      continue;
    }
    into.verbs.add(verb);
    for (const v of VERB_ALIASES[verb] ?? []) into.verbs.add(v);
  }
  return into;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The "dictionary prefix" family: every key the dictionary answers starts with `nemu_`. */
export const NEMU = 'nemu_';
