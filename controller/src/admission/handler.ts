/**
 * The webhook's entry point: bytes in, AdmissionReview out. It always admits; what the
 * mutators would change comes back as a JSONPatch.
 *
 * One review: decode → kind/operation check → `nemutator.io/skip` (fast out) → skipped verbs
 * (annotation + stored skip rules) → one dictionary round trip for every key the chain may
 * read → the chain → forward/reverse patch, verified locally → mutation log entry, durable →
 * answer. The reads (skip rules, dictionary) share one deadline (`deadlineMs`); a review that
 * would hand out a mutation id its log cannot hold admits the object unmutated instead.
 * An object the chain answered before (a replica) is answered from the chain memo when every
 * dictionary value and recommendation it read is unchanged (`memo.ts`), with its own id.
 * Anything that goes wrong on the way admits the object unchanged and says why in warnings;
 * the log gets one line per kind of failure and second, with a count (`ThrottledLog`).
 */
import { ErrorCodes, isNemuError, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { messageOf, ThrottledLog } from '#common/throttled-log.js';

import type { Dictionary } from '../dictionary/dictionary.ts';
import type { ControllerMetrics } from '../metrics.ts';
import { mutationId } from '../mutations/id.ts';
import type { MutationHead, MutationLog } from '../mutations/log.ts';
import { chainKeys, DEFAULT_CHAIN, runChain } from '../mutators/chain.ts';
import {
  isRecord,
  type KubeObject,
  MUTATION_LABEL,
  type Mutator,
  parseSkipVerbs,
  type RecommendationSource,
  SKIP_ANNOTATION,
  SKIP_MUTATION_ANNOTATION,
  type Verb,
  VERBS,
  type WorkloadKind,
} from '../mutators/types.ts';
import { controllerOf } from '../mutators/workload.ts';
import { ReviewDeadline } from './deadline.ts';
import { ChainMemo, type RecordedRecommendation } from './memo.ts';
import { applies, diff } from './patch.ts';
import { type PodSecurityLevel, podSecurityWarnings } from './pod-security.ts';
import { type AdmissionRequest, type AdmissionResponse, admissionResponse, type AdmissionReviewOut, decodeAdmissionReview } from './review.ts';
import type { SkipRules } from './skip-rules.ts';

export interface AdmissionHandler {
  /** Throws NemuError (400) only for bodies that are not a usable AdmissionReview. */
  review(body: Buffer): Promise<AdmissionReviewOut>;
}

export type Admit = (req: AdmissionRequest) => Promise<AdmissionReviewOut>;

/** Admits everything unchanged: the start of the chain before any mutator is configured. */
export function passThroughHandler(log: Logger): AdmissionHandler {
  return {
    async review(body) {
      const req = decodeAdmissionReview(body);
      log.debug({ uid: req.uid, kind: req.kind.kind, operation: req.operation }, 'admission review');
      return admissionResponse({ uid: req.uid, allowed: true });
    },
  };
}

export interface AdmissionOptions {
  log: Logger;
  dictionary: Dictionary;
  chain?: readonly Mutator[];
  /** Telemetry recommendations (skipped by the verb `prom_metrics`); absent until telemetry exists. */
  telemetry?: RecommendationSource;
  /** The ratio policy (`resourceRatio`); absent when off. */
  ratio?: RecommendationSource;
  skipRules?: SkipRules;
  mutationLog?: MutationLog;
  metrics?: ControllerMetrics;
  /** How many objects' chain answers to remember (`ChainMemo`); 0 = none. Default 1024. */
  memoEntries?: number;
  /** Deadline shared by a review's reads (skip rules, dictionary): `dictionaryTimeout`. Default 200 ms. */
  deadlineMs?: number;
  /** The Pod Security level a namespace enforces (from its labels); absent: never warned about. */
  podSecurityLevel?: (namespace: string) => PodSecurityLevel;
  /** A namespace's labels (the scheduler opt-in reads them); absent: none known. */
  namespaceLabels?: (namespace: string) => Readonly<Record<string, string>> | undefined;
}

export type ReviewResult = 'mutated' | 'unchanged' | 'skipped' | 'dry_run' | 'degraded' | 'refused' | 'invalid';

/** Which kinds and operations the chain handles. */
function handled(req: AdmissionRequest): WorkloadKind | undefined {
  const kind = req.kind.kind;
  const group = req.kind.group ?? '';
  if (group === '' && kind === 'Pod' && req.operation === 'CREATE' && !req.subResource) return 'Pod';
  if (group === 'apps' && kind === 'Deployment' && (req.operation === 'CREATE' || req.operation === 'UPDATE') && !req.subResource) return 'Deployment';
  return undefined;
}

type Answer = { review: AdmissionReviewOut; result: ReviewResult };

/** One review on its way through `admit`: the object and what has been said about it so far. */
interface InReview {
  req: AdmissionRequest;
  kind: WorkloadKind;
  object: KubeObject;
  meta: Record<string, unknown>;
  namespace: string;
  name: string | undefined;
  skip: ReturnType<typeof parseSkipVerbs>;
  warnings: string[];
  answer(result: ReviewResult, extra?: Omit<AdmissionResponse, 'uid' | 'allowed'>): Answer;
}

function answerFor(req: AdmissionRequest) {
  return (result: ReviewResult, extra: Omit<AdmissionResponse, 'uid' | 'allowed'> = {}): Answer => {
    const response: AdmissionResponse = { uid: req.uid, allowed: true, ...extra };
    if (response.warnings?.length === 0) delete response.warnings;
    return { review: admissionResponse(response), result };
  };
}

export function createAdmissionHandler(opts: AdmissionOptions): AdmissionHandler & { admit(req: AdmissionRequest): Promise<Answer> } {
  const admission = new Admission(opts);
  return { admit: (req) => admission.admit(req), review: (body) => admission.review(body) };
}

class Admission {
  private readonly chain: readonly Mutator[];
  private readonly memo: ChainMemo | undefined;
  private readonly deadlineMs: number;
  // A dependency that fails fails every review: one line per 10 s with the count (the
  // dictionary and the mutation log also say when they go down and come back). Failures that
  // are bugs (a mutator, a patch) get one line per second.
  private readonly outage: ThrottledLog;
  private readonly hot: ThrottledLog;

  constructor(private readonly opts: AdmissionOptions) {
    this.chain = opts.chain ?? DEFAULT_CHAIN;
    this.memo = (opts.memoEntries ?? 1024) > 0 ? new ChainMemo(opts.memoEntries ?? 1024) : undefined;
    this.deadlineMs = opts.deadlineMs ?? 200;
    this.outage = new ThrottledLog(opts.log, 10_000);
    this.hot = new ThrottledLog(opts.log);
  }

  async review(body: Buffer): Promise<AdmissionReviewOut> {
    const started = performance.now();
    let req: AdmissionRequest;
    try {
      req = decodeAdmissionReview(body);
    } catch (e) {
      this.opts.metrics?.reviews.inc({ kind: 'unknown', operation: 'unknown', result: 'invalid' });
      throw e;
    }
    const kindLabel = typeof req.kind.kind === 'string' ? req.kind.kind : 'unknown';
    let out: Answer;
    try {
      out = await this.admit(req);
    } catch (err) {
      // Never fail a review: the object goes in unchanged.
      this.hot.error('unexpected', { err, uid: req.uid }, 'admission failed unexpectedly; admitting unchanged');
      out = {
        review: admissionResponse({ uid: req.uid, allowed: true, warnings: [`${ErrorCodes.INTERNAL}: nemutator failed on this object; admitted unchanged`] }),
        result: 'degraded',
      };
    }
    // A pod labelled nemutator.io/secrets=required is refused rather than started with its
    // literal vault: references when the chain could not run or its secrets mutator failed.
    if (out.result === 'degraded' && requiresSecrets(req)) out = refuseWithoutSecrets(req, out.review.response.warnings ?? []);
    this.opts.metrics?.reviews.inc({ kind: kindLabel, operation: String(req.operation), result: out.result });
    this.opts.metrics?.reviewSeconds.observe({ kind: kindLabel }, (performance.now() - started) / 1000);
    return out.review;
  }

  /** The steps of one review, each of which may answer early. */
  async admit(req: AdmissionRequest): Promise<Answer> {
    const r = this.inReview(req);
    if (!('req' in r)) return r;
    const deadline = new ReviewDeadline(this.deadlineMs);
    const skipped = await this.readSkipRules(r, deadline);
    if (skipped) return skipped;
    if (this.chain.every((m) => r.skip.verbs.has(m.verb))) return r.answer('skipped', { warnings: r.warnings });

    // A review of an object the chain has answered before (the Pods of one ReplicaSet are one
    // object at admission) reuses that answer if everything the chain read is unchanged.
    // The enforced Pod Security level is part of the key: the remembered warnings depend on it.
    const level = this.opts.podSecurityLevel?.(r.namespace) ?? 'privileged';
    // The namespace's labels are read by the chain (scheduler opt-in): they are part of the key too.
    const nsLabels = this.opts.namespaceLabels?.(r.namespace);
    const memoKey =
      this.memo && !req.dryRun && !r.skip.verbs.has('patch') && req.oldObject == null
        ? this.memo.key(r.kind, req.operation, `${r.namespace}\u0000${level}\u0000${JSON.stringify(nsLabels ?? {})}`, r.skip.verbs, JSON.stringify(r.object))
        : undefined;
    const remembered = memoKey !== undefined ? this.memo!.get(memoKey) : undefined;
    const keys = remembered ? remembered.keys : chainKeys(this.chain, r.object, { kind: r.kind, namespace: r.namespace }, r.skip.verbs);
    const dictionary = await this.lookup(r, keys, deadline);
    if (!(dictionary instanceof Map)) return dictionary;

    if (remembered) {
      if (ChainMemo.current(remembered, dictionary)) return this.fromMemo(r, remembered);
      this.memo!.delete(memoKey!);
      this.opts.metrics?.memo.inc({ result: 'stale' });
    } else if (memoKey !== undefined) {
      this.opts.metrics?.memo.inc({ result: 'miss' });
    }
    return this.fromChain(r, dictionary, keys, memoKey, level, nsLabels);
  }

  /** The object under review, or the answer when there is nothing to do. */
  private inReview(req: AdmissionRequest): InReview | Answer {
    const answer = answerFor(req);
    const kind = handled(req);
    if (!kind) {
      const known = (req.kind.kind === 'Pod' || req.kind.kind === 'Deployment') && req.operation !== 'CREATE' && req.operation !== 'UPDATE';
      const podUpdate = req.kind.kind === 'Pod' && req.operation === 'UPDATE';
      if (known || podUpdate || req.subResource) return answer('unchanged');
      return answer('unchanged', { warnings: [`nemutator: ${req.kind.group || 'core'}/${req.kind.kind} ${req.operation} is not handled; admitted unchanged`] });
    }
    const object = req.object;
    if (!isRecord(object) || (object.metadata !== undefined && !isRecord(object.metadata))) {
      return answer('unchanged', { warnings: [`nemutator: the ${kind} in the review has no usable object; admitted unchanged`] });
    }
    const meta = (object.metadata ?? {}) as Record<string, unknown>;
    const annotations = isRecord(meta.annotations) ? (meta.annotations as Record<string, unknown>) : {};
    if (String(annotations[SKIP_ANNOTATION]).toLowerCase() === 'true') return answer('skipped');
    const namespace = (typeof req.namespace === 'string' && req.namespace) || (typeof meta.namespace === 'string' && meta.namespace) || 'default';
    const name = (typeof meta.name === 'string' && meta.name) || (typeof req.name === 'string' && req.name) || undefined;
    const skip = parseSkipVerbs(typeof annotations[SKIP_MUTATION_ANNOTATION] === 'string' ? (annotations[SKIP_MUTATION_ANNOTATION] as string) : undefined);
    const warnings = skip.unknown.map(
      (u) => `nemutator: unknown verb ${JSON.stringify(u)} in ${SKIP_MUTATION_ANNOTATION} ignored; known verbs: ${VERBS.join(' ')}`,
    );
    return { req, kind, object: object as KubeObject, meta, namespace, name, skip, warnings, answer };
  }

  /** Adds the stored skip rules' verbs; answers (unchanged) when they cannot be read in time. */
  private async readSkipRules(r: InReview, deadline: ReviewDeadline): Promise<Answer | undefined> {
    if (!this.opts.skipRules) return undefined;
    try {
      const late = () => new NemuError(ErrorCodes.STORE, `skip rules could not be read within the review's ${this.deadlineMs} ms (dictionaryTimeout)`);
      for (const v of await deadline.race(this.opts.skipRules.verbsFor(r.kind, r.namespace, r.object), late)) r.skip.verbs.add(v);
      return undefined;
    } catch (err) {
      this.outage.warn('dependency', { uid: r.req.uid, dependency: 'skip rules', error: messageOf(err) }, 'skip rules could not be read; admitting unchanged');
      return r.answer('degraded', { warnings: [...r.warnings, `${ErrorCodes.STORE}: skip rules could not be read; admitted unchanged`] });
    }
  }

  /** One dictionary round trip for every key; answers (unchanged) when it fails or is late. */
  private async lookup(r: InReview, keys: string[], deadline: ReviewDeadline): Promise<Map<string, string> | Answer> {
    try {
      const late = () =>
        new NemuError(ErrorCodes.DICT_UNREACHABLE, `the dictionary did not answer within the review's ${this.deadlineMs} ms (dictionaryTimeout)`);
      return keys.length > 0 ? await deadline.race(this.opts.dictionary.lookup(keys), late) : new Map();
    } catch (err) {
      const message = isNemuError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.DICT_UNREACHABLE}: ${messageOf(err)}`;
      this.outage.warn('dependency', { uid: r.req.uid, dependency: 'dictionary', error: messageOf(err) }, 'dictionary unreachable; admitting unchanged');
      return r.answer('degraded', { warnings: [...r.warnings, `${message}; admitted unchanged`] });
    }
  }

  /** A replica's answer, reused with its own mutation id. */
  private fromMemo(r: InReview, remembered: NonNullable<ReturnType<ChainMemo['get']>>): Promise<Answer> | Answer {
    this.opts.metrics?.memo.inc({ result: 'hit' });
    r.warnings.push(...remembered.warnings);
    if (remembered.forward === undefined) return r.answer('unchanged', { warnings: r.warnings });
    const id = mutationId();
    // the remembered id labels the Pod in the forward patch, once; the reverse patch only removes it
    const forward = remembered.id === undefined ? remembered.forward : remembered.forward.replace(remembered.id, id);
    return this.commit(r, remembered.applied, forward, remembered.reverse!, id);
  }

  /** Runs the chain and answers with its patch (remembered for the next replica). */
  private async fromChain(
    r: InReview,
    dictionary: Map<string, string>,
    keys: string[],
    memoKey: string | undefined,
    level: PodSecurityLevel,
    namespaceLabels: Readonly<Record<string, string>> | undefined,
  ): Promise<Answer> {
    const { req, kind, object, namespace, warnings } = r;
    const recommendations: RecommendationSource[] = [];
    if (this.opts.telemetry && !r.skip.verbs.has('prom_metrics')) recommendations.push(this.opts.telemetry);
    if (this.opts.ratio) recommendations.push(this.opts.ratio);
    const recorded: RecordedRecommendation[] = [];
    const ctx = {
      kind,
      operation: req.operation as 'CREATE' | 'UPDATE',
      namespace,
      dictionary,
      recommendations: memoKey !== undefined ? ChainMemo.recording(recommendations, recorded) : recommendations,
      ...(isRecord(req.oldObject) ? { oldObject: req.oldObject } : {}),
      ...(namespaceLabels ? { namespaceLabels } : {}),
    };
    const result = runChain(this.chain, object, ctx, r.skip.verbs);
    // what nemutator injected and the namespace's Pod Security level would refuse, said now
    result.warnings.push(...podSecurityWarnings(result.object, kind, namespace, level));
    warnings.push(...result.warnings);
    for (const verb of result.failed) this.opts.metrics?.mutatorErrors.inc({ mutator: verb });
    if (result.failed.length > 0) this.hot.warn('mutators', { uid: req.uid, kind, failed: result.failed }, 'mutators failed and were skipped');
    if (result.failed.includes('secrets') && requiresSecrets(req)) return refuseWithoutSecrets(req, warnings);
    // A run where a mutator failed is not remembered: the next review tries it again.
    const remember = (patches?: { forward: string; reverse: string; id?: string }) => {
      if (memoKey === undefined || result.failed.length > 0) return;
      this.memo!.set(memoKey, {
        keys,
        values: keys.map((k) => dictionary.get(k)),
        recommendations: recorded,
        applied: result.applied,
        warnings: result.warnings,
        ...patches,
      });
    };
    if (result.applied.length === 0) {
      remember();
      return r.answer('unchanged', { warnings });
    }
    const patches = this.patches(r, result.object);
    if (!('forward' in patches)) {
      if (patches.result === 'unchanged') remember();
      return patches;
    }
    remember(patches);
    return this.commit(r, result.applied, patches.forward, patches.reverse, patches.mutationId);
  }

  /** Forward and reverse patch of the chain's result, verified; or the answer when there is none to send. */
  private patches(r: InReview, changed: KubeObject): { forward: string; reverse: string; id?: string; mutationId: string } | Answer {
    const { req, kind, object, warnings } = r;
    const dryRun = r.skip.verbs.has('patch');
    // A mutated Pod carries its mutation id: a rollback finds it by this label (a Pod of a
    // ReplicaSet has no name yet when it is admitted).
    const id = mutationId();
    const mutated = kind === 'Pod' && !dryRun && !req.dryRun ? withLabel(changed, MUTATION_LABEL, id) : changed;
    const { forward, reverse } = diff(object, mutated);
    if (forward.length === 0) return r.answer('unchanged', { warnings });
    if (!applies(object, forward, mutated)) {
      this.hot.error(
        'patch',
        { uid: req.uid, kind, ops: forward.map((o) => ({ op: o.op, path: o.path })) },
        'computed patch does not apply to the object; admitting unchanged',
      );
      return r.answer('degraded', { warnings: [...warnings, `${ErrorCodes.INTERNAL}: nemutator computed a patch that does not apply; admitted unchanged`] });
    }
    if (dryRun) {
      const paths = forward.map((o) => `${o.op} ${o.path}`);
      this.opts.log.info(
        { uid: req.uid, kind, namespace: r.namespace, name: r.name, generateName: r.meta.generateName, ops: paths },
        'dry run (skip-mutation: patch): would apply',
      );
      return r.answer('dry_run', { warnings: [...warnings, `nemutator: dry run (${SKIP_MUTATION_ANNOTATION}: patch): would ${paths.join(', ')}`] });
    }
    return { forward: JSON.stringify(forward), reverse: JSON.stringify(reverse), ...(mutated !== changed ? { id } : {}), mutationId: id };
  }

  /** The answer with a patch, once its mutation log entry is durable; unmutated if it cannot be. */
  private async commit(r: InReview, applied: Verb[], patchJson: string, reverseJson: string, id: string): Promise<Answer> {
    const { req, kind, namespace, name, warnings } = r;
    if (!req.dryRun && this.opts.mutationLog) {
      try {
        await this.opts.mutationLog.commit(logHead(req, { id, kind, namespace, name, verbs: applied }), patchJson, reverseJson);
      } catch (err) {
        const message = isNemuError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.MUTATION_LOG}: ${messageOf(err)}`;
        this.outage.error(
          'dependency',
          { uid: req.uid, dependency: 'mutation log', error: messageOf(err) },
          'mutation log cannot be written; admitting unmutated',
        );
        return r.answer('degraded', { warnings: [...warnings, `${message}; admitted unmutated`] });
      }
    }
    this.opts.log.debug({ uid: req.uid, kind, namespace, name, verbs: applied, id }, 'mutated');
    return r.answer('mutated', {
      patchType: 'JSONPatch',
      patch: Buffer.from(patchJson).toString('base64'),
      warnings,
      ...(req.dryRun ? {} : { auditAnnotations: { mutation: id } }),
    });
  }
}

export const SECRETS_REQUIRED_LABEL = 'nemutator.io/secrets';

/** A Pod whose label asks to be refused rather than started without its secrets (docs/secrets.md). */
function requiresSecrets(req: AdmissionRequest): boolean {
  if (req.kind.kind !== 'Pod' || !isRecord(req.object) || !isRecord(req.object.metadata)) return false;
  const labels = req.object.metadata.labels;
  return isRecord(labels) && labels[SECRETS_REQUIRED_LABEL] === 'required';
}

function refuseWithoutSecrets(req: AdmissionRequest, warnings: string[]): { review: AdmissionReviewOut; result: ReviewResult } {
  const why = warnings.filter((w) => w.startsWith('NEMU_ERR_')).join('; ') || 'the secrets mutator could not run';
  const message = `${ErrorCodes.SECRETS_REQUIRED}: this pod is labelled ${SECRETS_REQUIRED_LABEL}=required and nemutator could not give it its secrets (${why}); it is refused rather than started with literal vault: values, and its controller will retry`;
  return {
    review: admissionResponse({
      uid: req.uid,
      allowed: false,
      status: { code: 503, reason: 'ServiceUnavailable', message },
      ...(warnings.length > 0 ? { warnings } : {}),
    }),
    result: 'refused',
  };
}

/** The mutation log entry of an answer, without its patches. */
function logHead(req: AdmissionRequest, m: { id: string; kind: WorkloadKind; namespace: string; name: string | undefined; verbs: Verb[] }): MutationHead {
  const object = req.object as KubeObject;
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const head: MutationHead = {
    id: m.id,
    reviewUid: req.uid,
    kind: m.kind,
    namespace: m.namespace,
    operation: req.operation as 'CREATE' | 'UPDATE',
    verbs: m.verbs,
    time: new Date().toISOString(),
  };
  if (m.name) head.name = m.name;
  if (typeof meta.generateName === 'string' && meta.generateName) head.generateName = meta.generateName;
  const owner = controllerOf(object);
  if (owner) head.owner = owner;
  if (isRecord(req.userInfo) && typeof req.userInfo.username === 'string') head.user = req.userInfo.username;
  return head;
}

function withLabel(object: KubeObject, key: string, value: string): KubeObject {
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const labels = isRecord(meta.labels) ? meta.labels : {};
  return { ...object, metadata: { ...meta, labels: { ...labels, [key]: value } } };
}
