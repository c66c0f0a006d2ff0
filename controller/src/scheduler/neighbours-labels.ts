/**
 * The bad-neighbour scores as labels on pods and their workloads:
 *
 *   nemutator.io/neighbour-now: low|medium|high      (and -usual, -worst)
 *
 * Written by the leader only, in the background (`pass`, every `neighbourLabelInterval`), and
 * only when a value changes bucket (neighbours.ts `bucketOf`), so a score moving inside its
 * bucket costs no API write. Writes are rate-limited: at most `writesPerMinute` in any 60 s
 * (a sliding window); what does not fit waits for a later pass, most harmful first.
 *
 * Never on a skipped object: `nemutator.io/skip: "true"`, the verb `neighbours` in
 * `nemutator.io/skip-mutation` (on the object, or for a pod on its workload), or a stored skip
 * rule with that verb (a rollback stores one). Every write is a JSON patch guarded by `test`
 * ops on the labels it replaces, logged in the mutation log with its reverse patch before it
 * is sent, so `nemutator mutations rollback ID` restores the previous labels.
 */
import fjp, { type Operation } from 'fast-json-patch';

import type { Logger } from '#common/log.js';

import type { SkipRules } from '../admission/skip-rules.ts';
import { ruleTargets } from '../admission/skip-rules.ts';
import type { ClusterClient, LabelledKind } from '../mutations/cluster.ts';
import { mutationId } from '../mutations/id.ts';
import type { MutationLog } from '../mutations/log.ts';
import { isRecord, type KubeObject, NEIGHBOURS_VERB, parseSkipVerbs, SKIP_ANNOTATION, SKIP_MUTATION_ANNOTATION } from '../mutators/types.ts';
import { bucketOf, type Dimension, DIMENSIONS, type NeighbourLookup, type NeighbourScore } from './neighbours.ts';

export const NEIGHBOUR_LABELS: Record<Dimension, string> = {
  now: 'nemutator.io/neighbour-now',
  usual: 'nemutator.io/neighbour-usual',
  worst: 'nemutator.io/neighbour-worst',
};

/** Who the mutation log names as the author of a label write. */
export const LABEL_WRITER = 'nemutator:neighbour-labels';

/** An object that may carry the labels, as the cluster model holds it. */
export interface LabelTarget {
  kind: LabelledKind;
  object: KubeObject;
  /** For a pod: its workload (kind, name) and that workload's object when known. */
  workload?: { kind: string; name: string; object?: KubeObject };
}

export interface LabelWriterOptions {
  cluster: ClusterClient;
  mutationLog: MutationLog;
  skipRules?: SkipRules;
  log: Logger;
  writesPerMinute: number;
  isLeader: () => boolean;
  /** The objects to consider, and the scores to label them with (both read at the start of a pass). */
  targets: () => Iterable<LabelTarget>;
  scores: () => NeighbourLookup;
  now?: () => number;
}

export interface PassResult {
  written: number;
  /** Changes that did not fit in the rate limit: written by a later pass. */
  deferred: number;
  /** Objects left alone because they are skipped. */
  skipped: number;
  failed: number;
}

/** A pointer to a label key (RFC 6901: `~` → `~0`, `/` → `~1`). */
const labelPath = (key: string) => `/metadata/labels/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;

function metaOf(o: KubeObject): { name: string; namespace: string; labels: Record<string, string>; annotations: Record<string, string> } {
  const m = isRecord(o.metadata) ? o.metadata : {};
  return {
    name: typeof m.name === 'string' ? m.name : '',
    namespace: typeof m.namespace === 'string' ? m.namespace : '',
    labels: isRecord(m.labels) ? (m.labels as Record<string, string>) : {},
    annotations: isRecord(m.annotations) ? (m.annotations as Record<string, string>) : {},
  };
}

/** Whether an object's own annotations exclude it from the neighbour labels. */
export function skippedByAnnotations(o: KubeObject | undefined): boolean {
  if (!o) return false;
  const a = metaOf(o).annotations;
  if (String(a[SKIP_ANNOTATION]).toLowerCase() === 'true') return true;
  return parseSkipVerbs(typeof a[SKIP_MUTATION_ANNOTATION] === 'string' ? a[SKIP_MUTATION_ANNOTATION] : undefined).verbs.has(NEIGHBOURS_VERB);
}

/** The forward ops (guarded by `test` on what they replace) and the reverse ops of one label change. */
export function labelPatch(labels: Record<string, string>, want: Record<string, string>): { forward: Operation[]; guarded: Operation[]; reverse: Operation[] } {
  const before = { metadata: { labels } };
  const after = { metadata: { labels: { ...labels, ...want } } };
  // An object without labels gets the whole map: there is no parent for /metadata/labels/<key>.
  const forward =
    Object.keys(labels).length === 0 ? [{ op: 'add', path: '/metadata/labels', value: after.metadata.labels } as Operation] : fjp.compare(before, after);
  const reverse = Object.keys(labels).length === 0 ? [{ op: 'remove', path: '/metadata/labels' } as Operation] : fjp.compare(after, before);
  const tests = Object.keys(want)
    .filter((k) => labels[k] !== undefined)
    .map((k) => ({ op: 'test', path: labelPath(k), value: labels[k] }) as Operation);
  return { forward, guarded: [...tests, ...forward], reverse };
}

export class NeighbourLabelWriter {
  /** Times of the writes of the last minute (sliding window). */
  private readonly writes: number[] = [];
  private running: Promise<PassResult> | undefined;
  readonly totals = { written: 0, deferred: 0, skipped: 0, failed: 0 };

  constructor(private readonly opts: LabelWriterOptions) {}

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /** Resolves when no pass is running (a pass started before `stop` finishes its writes). */
  async idle(): Promise<void> {
    await this.running?.catch(() => undefined);
  }

  /** Writes the window still allows now. */
  budget(): number {
    const now = this.now();
    while (this.writes.length > 0 && now - this.writes[0]! >= 60_000) this.writes.shift();
    return Math.max(0, this.opts.writesPerMinute - this.writes.length);
  }

  /** One pass (one at a time; a pass asked for while one runs shares it). Followers do nothing. */
  pass(): Promise<PassResult> {
    if (!this.opts.isLeader()) return Promise.resolve({ written: 0, deferred: 0, skipped: 0, failed: 0 });
    this.running ??= this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async skippedByRules(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const r of (await this.opts.skipRules?.list()) ?? []) if (r.verbs.includes(NEIGHBOURS_VERB)) out.add(`${r.namespace}/${r.kind}/${r.name}`);
    return out;
  }

  private isSkipped(t: LabelTarget, rules: Set<string>): boolean {
    const m = metaOf(t.object);
    if (skippedByAnnotations(t.object) || skippedByAnnotations(t.workload?.object)) return true;
    const names = [{ kind: t.kind, name: m.name }, ...(t.kind === 'Pod' ? ruleTargets('Pod', t.object) : []), ...(t.workload ? [t.workload] : [])];
    return names.some((n) => rules.has(`${m.namespace}/${n.kind}/${n.name}`));
  }

  /** The labels a target should carry that it does not (bucket changes only); undefined: none. */
  private wanted(t: LabelTarget, lookup: NeighbourLookup): { want: Record<string, string>; score: NeighbourScore } | undefined {
    const m = metaOf(t.object);
    const score = t.kind === 'Pod' ? lookup.forPod(m.namespace, m.name) : lookup.forWorkload(m.namespace, t.kind, m.name);
    if (!score) return undefined;
    const want: Record<string, string> = {};
    for (const d of DIMENSIONS) {
      const bucket = bucketOf(score[d]);
      if (m.labels[NEIGHBOUR_LABELS[d]] !== bucket) want[NEIGHBOUR_LABELS[d]] = bucket;
    }
    return Object.keys(want).length > 0 ? { want, score } : undefined;
  }

  private async run(): Promise<PassResult> {
    const result: PassResult = { written: 0, deferred: 0, skipped: 0, failed: 0 };
    const lookup = this.opts.scores();
    const rules = await this.skippedByRules();
    const changes: Array<{ t: LabelTarget; want: Record<string, string>; score: NeighbourScore }> = [];
    for (const t of this.opts.targets()) {
      const w = this.wanted(t, lookup);
      if (!w) continue;
      if (this.isSkipped(t, rules)) result.skipped++;
      else changes.push({ t, ...w });
    }
    // Most harmful first: when the budget runs out, the labels that matter most are written.
    changes.sort((a, b) => b.score.worst - a.score.worst || b.score.now - a.score.now);
    for (const c of changes) {
      if (this.budget() === 0 || !this.opts.isLeader()) {
        result.deferred++;
        continue;
      }
      this.writes.push(this.now());
      if (await this.write(c.t, c.want)) result.written++;
      else result.failed++;
    }
    for (const k of Object.keys(result) as Array<keyof PassResult>) this.totals[k] += result[k];
    if (result.written + result.deferred + result.failed > 0) this.opts.log.info(result, 'neighbour labels pass');
    return result;
  }

  /** One guarded label patch, logged before it is sent (an entry for a write that failed is harmless; a write without one could not be undone). */
  private async write(t: LabelTarget, want: Record<string, string>): Promise<boolean> {
    const m = metaOf(t.object);
    const { forward, guarded, reverse } = labelPatch(m.labels, want);
    const id = mutationId();
    await this.opts.mutationLog.append({
      id,
      reviewUid: '',
      kind: t.kind,
      namespace: m.namespace,
      name: m.name,
      ...(t.workload ? { owner: { kind: t.workload.kind, name: t.workload.name } } : {}),
      operation: 'UPDATE',
      verbs: [NEIGHBOURS_VERB],
      patch: forward,
      reversePatch: reverse,
      user: LABEL_WRITER,
      time: new Date().toISOString(),
    });
    try {
      await this.opts.cluster.patchObject(t.kind, m.namespace, m.name, guarded);
      return true;
    } catch (e) {
      // 422/409: the labels moved since the model saw them; the next pass sees the new ones.
      this.opts.log.warn({ kind: t.kind, namespace: m.namespace, name: m.name, mutation: id, err: (e as Error).message }, 'neighbour labels not written');
      return false;
    }
  }
}
