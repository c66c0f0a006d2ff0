/**
 * When the season flips (peak ↔ off-peak), running pods are moved to the new brainset's
 * requests with a ladder:
 *
 *   1. in place, through the `pods/resize` subresource (Kubernetes ≥ 1.33: found by API
 *      discovery), when every changed resource's `resizePolicy` allows it — `NotRequired`, or
 *      `RestartContainer` on a pod whose restartPolicy lets the container restart;
 *   2. else evict through the Eviction API (PodDisruptionBudgets respected: a 429 means
 *      "not now"), so the owner recreates the pod and admission gives it the new requests;
 *   3. else leave it as it is.
 *
 * Actions are rate-limited (resizeRate per minute), `dry-run` only plans, and every in-place
 * resize is written to the mutation log with its reverse patch; the pod is labelled with the
 * entry id, so `nemutator mutations rollback ID` finds it, and `rollbackResize` resizes back.
 */
import { CoreV1Api, type KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import fjp, { type Operation } from 'fast-json-patch';

import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { ClusterModel } from '../model/model.ts';
import { apiMessage, apiStatus } from '../mutations/cluster.ts';
import { mutationId } from '../mutations/id.ts';
import type { MutationEntry, MutationLog } from '../mutations/log.ts';
import { formatCpu, parseQuantity } from '../mutators/quantity.ts';
import { MUTATION_LABEL } from '../mutators/types.ts';
import type { Season } from '../telemetry/seasons.ts';
import type { Telemetry } from '../telemetry/service.ts';
import { formatMemory, resourcesOf } from '../telemetry/source.ts';

export type ResizeMode = 'off' | 'dry-run' | 'on';

export interface ResizeAction {
  namespace: string;
  pod: string;
  season: Season;
  action: 'resized' | 'evicted' | 'left' | 'planned';
  /** Why this rung of the ladder. */
  reason: string;
  changes: Array<{ container: string; from: Record<string, string>; to: Record<string, string> }>;
  mutationId?: string;
}

export interface ResizeOptions {
  mode: ResizeMode;
  /** Actions per minute. */
  ratePerMinute: number;
  /** Smallest relative change of a request worth acting on. */
  minChange: number;
  /** Singleton work: only the leader replica resizes on a flip. */
  isLeader?: () => boolean;
}

type Pod = {
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: { restartPolicy?: string; containers?: Container[] };
  status?: { phase?: string };
};
type Container = {
  name: string;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  resizePolicy?: Array<{ resourceName: string; restartPolicy: string }>;
};

export class ResizeLadder {
  readonly history: ResizeAction[] = [];
  private readonly core: CoreV1Api;
  private resizeSupported: boolean | undefined;
  private nextSlot = 0;
  private running: Promise<ResizeAction[]> = Promise.resolve([]);

  constructor(
    kc: KubeConfig,
    private readonly model: ClusterModel,
    private readonly telemetry: Telemetry,
    private readonly log: MutationLog,
    private readonly logger: Logger,
    private readonly opts: ResizeOptions,
  ) {
    this.core = kc.makeApiClient(CoreV1Api);
  }

  /** Listens to the telemetry's season flips. */
  attach(): void {
    this.telemetry.onSeasonFlip((season) => {
      if (this.opts.mode === 'off' || !(this.opts.isLeader?.() ?? true)) return;
      void this.onFlip(season);
    });
  }

  /** Runs the ladder over every running pod for `season` (one pass at a time). */
  onFlip(season: Season, mode: ResizeMode = this.opts.mode): Promise<ResizeAction[]> {
    this.running = this.running
      .then(() => this.pass(season, mode))
      .catch((e) => {
        this.logger.error({ err: e }, 'season-flip resize pass failed');
        return [];
      });
    return this.running;
  }

  private async supportsResize(): Promise<boolean> {
    if (this.resizeSupported !== undefined) return this.resizeSupported;
    try {
      const list = await this.core.getAPIResources();
      this.resizeSupported = list.resources.some((r) => r.name === 'pods/resize');
    } catch {
      this.resizeSupported = false;
    }
    return this.resizeSupported;
  }

  private async slot(): Promise<void> {
    const gap = 60_000 / this.opts.ratePerMinute;
    const now = Date.now();
    const at = Math.max(now, this.nextSlot);
    this.nextSlot = at + gap;
    if (at > now) await new Promise((r) => setTimeout(r, at - now));
  }

  /** The containers of a pod whose requests should change for `season`. */
  plan(pod: Pod, season: Season): ResizeAction['changes'] {
    const ns = pod.metadata?.namespace ?? '';
    const workload = this.model.workloadOf(pod as never);
    const changes: ResizeAction['changes'] = [];
    for (const c of pod.spec?.containers ?? []) {
      const requests = c.resources?.requests ?? {};
      const limits = c.resources?.limits ?? {};
      const answer = this.telemetry.recommendation(ns, workload, c.name, { requests: resourcesOf(requests), limits: resourcesOf(limits) }, season);
      if ('reason' in answer) continue;
      const rec = answer.recommendation;
      const to: Record<string, string> = {};
      const from: Record<string, string> = {};
      let big = false;
      for (const r of ['cpu', 'memory'] as const) {
        const want = rec.requests[r];
        const have = parseQuantity(requests[r]);
        const text = r === 'cpu' ? formatCpu(want) : formatMemory(want);
        if (have === undefined || Math.abs(want - have) / have > this.opts.minChange) big = true;
        if (requests[r] !== undefined) from[`requests.${r}`] = requests[r]!;
        to[`requests.${r}`] = text;
        // Limits move only when the new request would pass them (to the policy's limit, at
        // least the request): re-deriving them on every flip would let a ratio drift.
        const limit = parseQuantity(limits[r]);
        if (limit !== undefined && want > limit) {
          const lim = Math.max(want, rec.limits[r] ?? want);
          from[`limits.${r}`] = limits[r]!;
          to[`limits.${r}`] = r === 'cpu' ? formatCpu(lim) : formatMemory(lim);
        }
      }
      if (big) changes.push({ container: c.name, from, to });
    }
    return changes;
  }

  /** Why this pod cannot be resized in place, or undefined when it can. */
  private inPlaceBlocker(pod: Pod, changes: ResizeAction['changes']): string | undefined {
    for (const ch of changes) {
      const c = pod.spec?.containers?.find((x) => x.name === ch.container);
      for (const key of Object.keys(ch.to)) {
        const resource = key.split('.')[1]!;
        const policy = c?.resizePolicy?.find((p) => p.resourceName === resource)?.restartPolicy ?? 'NotRequired';
        if (policy === 'RestartContainer' && pod.spec?.restartPolicy === 'Never')
          return `resizePolicy of ${ch.container}/${resource} is RestartContainer and the pod never restarts containers`;
      }
    }
    return undefined;
  }

  private async pass(season: Season, mode: ResizeMode): Promise<ResizeAction[]> {
    const actions: ResizeAction[] = [];
    for (const obj of this.model.list('pods')) {
      const pod = obj as Pod;
      if (pod.status?.phase !== 'Running') continue;
      const changes = this.plan(pod, season);
      if (changes.length === 0) continue;
      const base = { namespace: pod.metadata?.namespace ?? '', pod: pod.metadata?.name ?? '', season, changes };
      let action: ResizeAction;
      if (mode === 'dry-run') action = { ...base, action: 'planned', reason: 'dry run: nothing changed' };
      else {
        await this.slot();
        action = await this.climb(pod, base);
      }
      this.logger.info({ ...action, changes: action.changes.length }, `season ${season}: ${action.action} ${action.namespace}/${action.pod}`);
      this.history.push(action);
      actions.push(action);
    }
    return actions;
  }

  private async climb(pod: Pod, base: Omit<ResizeAction, 'action' | 'reason'>): Promise<ResizeAction> {
    const ns = base.namespace;
    const name = base.pod;
    const blocker = (await this.supportsResize()) ? this.inPlaceBlocker(pod, base.changes) : 'the cluster has no pods/resize subresource (Kubernetes < 1.33)';
    if (!blocker) {
      const target = structuredClone(pod);
      for (const ch of base.changes) {
        const c = target.spec!.containers!.find((x) => x.name === ch.container)!;
        c.resources ??= {};
        for (const [key, v] of Object.entries(ch.to)) {
          const [field, r] = key.split('.') as ['requests' | 'limits', string];
          (c.resources[field] ??= {})[r] = v;
        }
      }
      const forward = fjp.compare({ spec: { containers: pod.spec?.containers } }, { spec: { containers: target.spec?.containers } });
      const reverse = fjp.compare({ spec: { containers: target.spec?.containers } }, { spec: { containers: pod.spec?.containers } });
      try {
        await this.core.patchNamespacedPodResize({ name, namespace: ns, body: forward }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
        const id = mutationId();
        await this.core.patchNamespacedPod(
          { name, namespace: ns, body: [{ op: 'add', path: `/metadata/labels`, value: { ...(pod.metadata?.labels ?? {}), [MUTATION_LABEL]: id } }] },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        );
        const entry: MutationEntry = {
          id,
          reviewUid: `resize-${id}`,
          kind: 'Pod',
          namespace: ns,
          name,
          operation: 'UPDATE',
          verbs: ['resources'],
          patch: forward,
          reversePatch: reverse,
          user: 'nemutator:season-resize',
          time: new Date().toISOString(),
        };
        await this.log.append(entry);
        return { ...base, action: 'resized', reason: 'in place through pods/resize', mutationId: id };
      } catch (e) {
        this.logger.warn({ pod: `${ns}/${name}`, status: apiStatus(e), err: apiMessage(e) }, 'in-place resize refused; trying eviction');
        return this.evict(base, `in-place resize refused: ${apiMessage(e)}`);
      }
    }
    return this.evict(base, blocker);
  }

  private async evict(base: Omit<ResizeAction, 'action' | 'reason'>, why: string): Promise<ResizeAction> {
    try {
      await this.core.createNamespacedPodEviction({
        name: base.pod,
        namespace: base.namespace,
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: base.pod, namespace: base.namespace } },
      });
      return { ...base, action: 'evicted', reason: `${why}; evicted so its owner recreates it with the new requests` };
    } catch (e) {
      const status = apiStatus(e);
      return {
        ...base,
        action: 'left',
        reason: `${why}; eviction ${status === 429 ? 'refused by a PodDisruptionBudget' : `failed: ${apiMessage(e)}`}; left as it is`,
      };
    }
  }

  /** Resizes a pod back with the reverse patch of a logged season resize. */
  async rollback(id: string, user?: string): Promise<{ id: string; namespace: string; name: string; action: 'resized back' }> {
    const entry = await this.log.get(id);
    if (!entry || !entry.reviewUid.startsWith('resize-'))
      throw new NemuError(ErrorCodes.NOT_FOUND, `${id} is not a season resize in the mutation log; 'nemutator mutations list --kind Pod' shows them`, {
        status: 404,
      });
    if (entry.rolledBack) throw new NemuError(ErrorCodes.CONFLICT, `resize ${id} was already rolled back at ${entry.rolledBack.time}`, { status: 409 });
    const guards = entry.patch.flatMap((op) => (op.op === 'add' || op.op === 'replace' ? [{ op: 'test', path: op.path, value: op.value } as Operation] : []));
    try {
      await this.core.patchNamespacedPodResize(
        { name: entry.name!, namespace: entry.namespace, body: [...guards, ...entry.reversePatch] },
        setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
      );
    } catch (e) {
      const status = apiStatus(e);
      throw new NemuError(
        status === 404 ? ErrorCodes.NOT_FOUND : ErrorCodes.CONFLICT,
        `cannot resize pod ${entry.namespace}/${entry.name} back: ${apiMessage(e)}`,
        { status: status === 404 ? 404 : 409 },
      );
    }
    await this.log.update({ ...entry, rolledBack: { time: new Date().toISOString(), ...(user ? { user } : {}) } });
    return { id, namespace: entry.namespace, name: entry.name!, action: 'resized back' };
  }
}
