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
import type { Logger } from '../../../common/src/log.ts';
import { isNemuError, ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import { messageOf, ThrottledLog } from '../../../common/src/throttled-log.ts';
import type { Dictionary } from '../dictionary/dictionary.ts';
import type { ControllerMetrics } from '../metrics.ts';
import { chainKeys, DEFAULT_CHAIN, runChain } from '../mutators/chain.ts';
import {
  isRecord,
  MUTATION_LABEL,
  parseSkipVerbs,
  SKIP_ANNOTATION,
  SKIP_MUTATION_ANNOTATION,
  VERBS,
  type KubeObject,
  type Mutator,
  type RecommendationSource,
  type Verb,
  type WorkloadKind,
} from '../mutators/types.ts';
import { controllerOf } from '../mutators/workload.ts';
import { mutationId } from '../mutations/id.ts';
import type { MutationHead, MutationLog } from '../mutations/log.ts';
import { ReviewDeadline } from './deadline.ts';
import { ChainMemo, type RecordedRecommendation } from './memo.ts';
import { admissionResponse, decodeAdmissionReview, type AdmissionRequest, type AdmissionResponse, type AdmissionReviewOut } from './review.ts';
import { applies, diff } from './patch.ts';
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

export function createAdmissionHandler(opts: AdmissionOptions): AdmissionHandler & { admit(req: AdmissionRequest): Promise<{ review: AdmissionReviewOut; result: ReviewResult }> } {
  const chain = opts.chain ?? DEFAULT_CHAIN;
  const log = opts.log;
  const memo = (opts.memoEntries ?? 1024) > 0 ? new ChainMemo(opts.memoEntries ?? 1024) : undefined;
  const deadlineMs = opts.deadlineMs ?? 200;
  // A dependency that fails fails every review: one line per 10 s with the count (the
  // dictionary and the mutation log also say when they go down and come back). Failures that
  // are bugs (a mutator, a patch) get one line per second.
  const outage = new ThrottledLog(log, 10_000);
  const hot = new ThrottledLog(log);

  async function admit(req: AdmissionRequest): Promise<{ review: AdmissionReviewOut; result: ReviewResult }> {
    const answer = (result: ReviewResult, extra: Omit<AdmissionResponse, 'uid' | 'allowed'> = {}) => {
      const response: AdmissionResponse = { uid: req.uid, allowed: true, ...extra };
      if (response.warnings?.length === 0) delete response.warnings;
      return { review: admissionResponse(response), result };
    };
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
    const deadline = new ReviewDeadline(deadlineMs);
    const warnings: string[] = [];
    const skip = parseSkipVerbs(typeof annotations[SKIP_MUTATION_ANNOTATION] === 'string' ? (annotations[SKIP_MUTATION_ANNOTATION] as string) : undefined);
    for (const u of skip.unknown) warnings.push(`nemutator: unknown verb ${JSON.stringify(u)} in ${SKIP_MUTATION_ANNOTATION} ignored; known verbs: ${VERBS.join(' ')}`);
    if (opts.skipRules) {
      try {
        const late = () => new NemuError(ErrorCodes.STORE, `skip rules could not be read within the review's ${deadlineMs} ms (dictionaryTimeout)`);
        for (const v of await deadline.race(opts.skipRules.verbsFor(kind, namespace, object), late)) skip.verbs.add(v);
      } catch (err) {
        outage.warn('dependency', { uid: req.uid, dependency: 'skip rules', error: messageOf(err) }, 'skip rules could not be read; admitting unchanged');
        return answer('degraded', { warnings: [...warnings, `${ErrorCodes.STORE}: skip rules could not be read; admitted unchanged`] });
      }
    }
    if (chain.every((m) => skip.verbs.has(m.verb))) return answer('skipped', { warnings });

    // A review of an object the chain has answered before (the Pods of one ReplicaSet are one
    // object at admission) reuses that answer if everything the chain read is unchanged.
    const memoKey = memo && !req.dryRun && !skip.verbs.has('patch') && req.oldObject == null ? memo.key(kind, req.operation, namespace, skip.verbs, JSON.stringify(object)) : undefined;
    const remembered = memoKey !== undefined ? memo!.get(memoKey) : undefined;

    let dictionary: Map<string, string>;
    const keys = remembered ? remembered.keys : chainKeys(chain, object, { kind, namespace }, skip.verbs);
    try {
      const late = () => new NemuError(ErrorCodes.DICT_UNREACHABLE, `the dictionary did not answer within the review's ${deadlineMs} ms (dictionaryTimeout)`);
      dictionary = keys.length > 0 ? await deadline.race(opts.dictionary.lookup(keys), late) : new Map();
    } catch (err) {
      const message = isNemuError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.DICT_UNREACHABLE}: ${messageOf(err)}`;
      outage.warn('dependency', { uid: req.uid, dependency: 'dictionary', error: messageOf(err) }, 'dictionary unreachable; admitting unchanged');
      return answer('degraded', { warnings: [...warnings, `${message}; admitted unchanged`] });
    }

    const recommendations: RecommendationSource[] = [];
    if (opts.telemetry && !skip.verbs.has('prom_metrics')) recommendations.push(opts.telemetry);
    if (opts.ratio) recommendations.push(opts.ratio);
    const operation = req.operation as 'CREATE' | 'UPDATE';
    const name = (typeof meta.name === 'string' && meta.name) || (typeof req.name === 'string' && req.name) || undefined;

    /** The answer with a patch, once its mutation log entry is durable; unmutated if it cannot be. */
    const mutatedAnswer = async (applied: Verb[], patchJson: string, reverseJson: string, id: string) => {
      if (!req.dryRun && opts.mutationLog) {
        try {
          await opts.mutationLog.commit(logHead(req, { id, kind, namespace, name, verbs: applied }), patchJson, reverseJson);
        } catch (err) {
          const message = isNemuError(err) ? `${err.code}: ${err.message}` : `${ErrorCodes.MUTATION_LOG}: ${messageOf(err)}`;
          outage.error('dependency', { uid: req.uid, dependency: 'mutation log', error: messageOf(err) }, 'mutation log cannot be written; admitting unmutated');
          return answer('degraded', { warnings: [...warnings, `${message}; admitted unmutated`] });
        }
      }
      log.debug({ uid: req.uid, kind, namespace, name, verbs: applied, id }, 'mutated');
      return answer('mutated', { patchType: 'JSONPatch', patch: Buffer.from(patchJson).toString('base64'), warnings, ...(req.dryRun ? {} : { auditAnnotations: { mutation: id } }) });
    };

    if (remembered) {
      if (ChainMemo.current(remembered, dictionary)) {
        opts.metrics?.memo.inc({ result: 'hit' });
        warnings.push(...remembered.warnings);
        if (remembered.forward === undefined) return answer('unchanged', { warnings });
        const id = mutationId();
        // the remembered id labels the Pod in the forward patch, once; the reverse patch only removes it
        const forward = remembered.id === undefined ? remembered.forward : remembered.forward.replace(remembered.id, id);
        return mutatedAnswer(remembered.applied, forward, remembered.reverse!, id);
      }
      memo!.delete(memoKey!);
      opts.metrics?.memo.inc({ result: 'stale' });
    } else if (memoKey !== undefined) {
      opts.metrics?.memo.inc({ result: 'miss' });
    }

    const recorded: RecordedRecommendation[] = [];
    const ctx = { kind, operation, namespace, dictionary, recommendations: memoKey !== undefined ? ChainMemo.recording(recommendations, recorded) : recommendations, ...(isRecord(req.oldObject) ? { oldObject: req.oldObject } : {}) };
    const result = runChain(chain, object, ctx, skip.verbs);
    warnings.push(...result.warnings);
    for (const verb of result.failed) opts.metrics?.mutatorErrors.inc({ mutator: verb });
    if (result.failed.length > 0) hot.warn('mutators', { uid: req.uid, kind, failed: result.failed }, 'mutators failed and were skipped');
    if (result.failed.includes('secrets') && requiresSecrets(req)) return refuseWithoutSecrets(req, warnings);
    // A run where a mutator failed is not remembered: the next review tries it again.
    const remember = (patches?: { forward: string; reverse: string; id?: string }) => {
      if (memoKey === undefined || result.failed.length > 0) return;
      memo!.set(memoKey, { keys, values: keys.map((k) => dictionary.get(k)), recommendations: recorded, applied: result.applied, warnings: result.warnings, ...patches });
    };
    if (result.applied.length === 0) {
      remember();
      return answer('unchanged', { warnings });
    }

    const dryRun = skip.verbs.has('patch');
    // A mutated Pod carries its mutation id: a rollback finds it by this label (a Pod of a
    // ReplicaSet has no name yet when it is admitted).
    const id = mutationId();
    const mutated = kind === 'Pod' && !dryRun && !req.dryRun ? withLabel(result.object, MUTATION_LABEL, id) : result.object;
    const { forward, reverse } = diff(object, mutated);
    if (forward.length === 0) {
      remember();
      return answer('unchanged', { warnings });
    }
    if (!applies(object, forward, mutated)) {
      hot.error('patch', { uid: req.uid, kind, ops: forward.map((o) => ({ op: o.op, path: o.path })) }, 'computed patch does not apply to the object; admitting unchanged');
      return answer('degraded', { warnings: [...warnings, `${ErrorCodes.INTERNAL}: nemutator computed a patch that does not apply; admitted unchanged`] });
    }
    if (dryRun) {
      const paths = forward.map((o) => `${o.op} ${o.path}`);
      log.info({ uid: req.uid, kind, namespace, name, generateName: meta.generateName, verbs: result.applied, ops: paths }, 'dry run (skip-mutation: patch): would apply');
      return answer('dry_run', { warnings: [...warnings, `nemutator: dry run (${SKIP_MUTATION_ANNOTATION}: patch): would ${paths.join(', ')}`] });
    }
    const patches = { forward: JSON.stringify(forward), reverse: JSON.stringify(reverse), ...(mutated !== result.object ? { id } : {}) };
    remember(patches);
    return mutatedAnswer(result.applied, patches.forward, patches.reverse, id);
  }

  return {
    admit,
    async review(body) {
      const started = performance.now();
      let req: AdmissionRequest;
      try {
        req = decodeAdmissionReview(body);
      } catch (e) {
        opts.metrics?.reviews.inc({ kind: 'unknown', operation: 'unknown', result: 'invalid' });
        throw e;
      }
      const kindLabel = typeof req.kind.kind === 'string' ? req.kind.kind : 'unknown';
      let out: { review: AdmissionReviewOut; result: ReviewResult };
      try {
        out = await admit(req);
      } catch (err) {
        // Never fail a review: the object goes in unchanged.
        hot.error('unexpected', { err, uid: req.uid }, 'admission failed unexpectedly; admitting unchanged');
        out = { review: admissionResponse({ uid: req.uid, allowed: true, warnings: [`${ErrorCodes.INTERNAL}: nemutator failed on this object; admitted unchanged`] }), result: 'degraded' };
      }
      // A pod labelled nemutator.io/secrets=required is refused rather than started with its
      // literal vault: references when the chain could not run or its secrets mutator failed.
      if (out.result === 'degraded' && requiresSecrets(req)) out = refuseWithoutSecrets(req, out.review.response.warnings ?? []);
      opts.metrics?.reviews.inc({ kind: kindLabel, operation: String(req.operation), result: out.result });
      opts.metrics?.reviewSeconds.observe({ kind: kindLabel }, (performance.now() - started) / 1000);
      return out.review;
    },
  };
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
  return { review: admissionResponse({ uid: req.uid, allowed: false, status: { code: 503, reason: 'ServiceUnavailable', message }, ...(warnings.length > 0 ? { warnings } : {}) }), result: 'refused' };
}

/** The mutation log entry of an answer, without its patches. */
function logHead(req: AdmissionRequest, m: { id: string; kind: WorkloadKind; namespace: string; name: string | undefined; verbs: Verb[] }): MutationHead {
  const object = req.object as KubeObject;
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const head: MutationHead = { id: m.id, reviewUid: req.uid, kind: m.kind, namespace: m.namespace, operation: req.operation as 'CREATE' | 'UPDATE', verbs: m.verbs, time: new Date().toISOString() };
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
