// Minimal in-process controllers so workloads behave like a cluster's: Deployment →
// ReplicaSet → Pod (with pod-template-hash, revisions and a rolling replacement),
// StatefulSet and DaemonSet pods, a scheduler + kubelet stand-in that binds pods to nodes
// and marks them Running/Ready, and the disruption controller's PDB status. Pods are
// created through the registry, so admission webhooks see them as they would see a
// ReplicaSet controller's pods.
import { createHash } from 'node:crypto';

import type { UserInfo } from './auth.ts';
import { isPodReady, refreshPdbs } from './disruption.ts';
import type { Registry } from './registry.ts';
import type { ResourceType } from './resources.ts';
import { type LabelSelectorObject, matchesLabelSelectorObject } from './selectors.ts';
import { ApiError } from './status.ts';
import { clone, type KubeObject, type StoreEvent } from './store.ts';
import { nowTimestamp } from './strategies.ts';

type Obj = Record<string, unknown>;

function controllerUser(name: string): UserInfo {
  return {
    username: `system:serviceaccount:kube-system:${name}`,
    groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
  };
}

const HASH_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v as Obj)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Obj)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** A stable, DNS-safe hash of a pod template (the role of pod-template-hash / controller-revision-hash). */
export function templateHash(template: unknown, length = 10): string {
  const digest = createHash('sha256').update(canonical(template)).digest();
  let out = '';
  for (let i = 0; i < length; i++) out += HASH_ALPHABET[(digest[i] as number) % HASH_ALPHABET.length];
  return out;
}

function controllerRef(owner: KubeObject): Obj {
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}

function isControlledBy(o: KubeObject, owner: KubeObject): boolean {
  return (o.metadata.ownerReferences ?? []).some((r) => r.controller && r.uid === owner.metadata.uid);
}

function controllerOf(o: KubeObject): { kind: string; name: string; uid: string } | undefined {
  return (o.metadata.ownerReferences ?? []).find((r) => r.controller);
}

export interface ControllerOptions {
  /** Deployment, ReplicaSet, StatefulSet, DaemonSet and disruption controllers. */
  workloads: boolean;
  /** Scheduler + kubelet stand-in: bind pods to nodes, mark them Running and Ready. */
  kubelet: boolean;
  /** Delay before the kubelet reports a bound pod Running (ms). */
  podStartDelayMs?: number;
}

export class Controllers {
  private readonly registry: Registry;
  private readonly opts: ControllerOptions;
  private readonly dirty = new Map<string, { r: ResourceType; ns: string | undefined; name: string }>();
  private readonly running = new Set<string>();
  private readonly pending = new Set<Promise<void>>();
  private unsubscribe: (() => void) | undefined;
  private resync: NodeJS.Timeout | undefined;
  private scheduled = false;
  private stopped = false;
  private nextPodIp = 2;
  private nodeCursor = 0;

  constructor(registry: Registry, opts: ControllerOptions) {
    this.registry = registry;
    this.opts = opts;
  }

  start(): void {
    this.unsubscribe = this.registry.store.subscribe((e) => this.onEvent(e));
    // Periodic resync retries work that failed (a webhook down, a conflict).
    this.resync = setInterval(() => this.enqueueAll(), 1000);
    this.resync.unref();
    this.enqueueAll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    if (this.resync) clearInterval(this.resync);
    await Promise.allSettled([...this.pending]);
  }

  /** Resolves when no reconcile is queued or running (for tests that need a quiet cluster). */
  async idle(): Promise<void> {
    for (let i = 0; i < 200 && (this.dirty.size > 0 || this.pending.size > 0 || this.scheduled); i++) {
      await Promise.allSettled([...this.pending]);
      await new Promise((r) => setImmediate(r));
    }
  }

  private res(group: string, plural: string): ResourceType {
    return this.registry.resource(group, plural);
  }

  private enqueue(r: ResourceType, ns: string | undefined, name: string): void {
    if (this.stopped) return;
    this.dirty.set(`${r.group}/${r.plural}/${ns ?? ''}/${name}`, { r, ns, name });
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.drain();
      });
    }
  }

  private enqueueAll(): void {
    const kinds: [string, string][] = [];
    if (this.opts.workloads) kinds.push(['apps', 'deployments'], ['apps', 'replicasets'], ['apps', 'statefulsets'], ['apps', 'daemonsets']);
    if (this.opts.kubelet) kinds.push(['', 'pods']);
    for (const [g, p] of kinds) {
      const r = this.res(g, p);
      for (const o of this.registry.store.list(r)) {
        if (p === 'pods' && !this.kubeletWants(o)) continue;
        this.enqueue(r, o.metadata.namespace, o.metadata.name as string);
      }
    }
  }

  private onEvent(e: StoreEvent): void {
    const o = e.object;
    const ns = o.metadata.namespace;
    const kind = e.resource.kind;
    if (kind === 'Pod') {
      if (this.opts.kubelet && e.type !== 'DELETED' && this.kubeletWants(o)) this.enqueue(e.resource, ns, o.metadata.name as string);
      if (this.opts.workloads) {
        const owner = controllerOf(o);
        if (owner?.kind === 'ReplicaSet') this.enqueue(this.res('apps', 'replicasets'), ns, owner.name);
        if (owner?.kind === 'StatefulSet') this.enqueue(this.res('apps', 'statefulsets'), ns, owner.name);
        if (owner?.kind === 'DaemonSet') this.enqueue(this.res('apps', 'daemonsets'), ns, owner.name);
        if (ns) queueMicrotask(() => refreshPdbs(this.registry, ns));
      }
      return;
    }
    if (!this.opts.workloads) return;
    if (e.type === 'DELETED') return;
    switch (kind) {
      case 'Deployment':
      case 'StatefulSet':
      case 'DaemonSet':
        this.enqueue(e.resource, ns, o.metadata.name as string);
        break;
      case 'ReplicaSet': {
        this.enqueue(e.resource, ns, o.metadata.name as string);
        const owner = controllerOf(o);
        if (owner?.kind === 'Deployment') this.enqueue(this.res('apps', 'deployments'), ns, owner.name);
        break;
      }
      case 'PodDisruptionBudget':
        if (ns && e.type === 'ADDED') queueMicrotask(() => refreshPdbs(this.registry, ns));
        else if (ns && JSON.stringify((e.oldObject as KubeObject | undefined)?.['spec']) !== JSON.stringify(o['spec']))
          queueMicrotask(() => refreshPdbs(this.registry, ns));
        break;
      case 'Node':
        for (const ds of this.registry.store.list(this.res('apps', 'daemonsets')))
          this.enqueue(this.res('apps', 'daemonsets'), ds.metadata.namespace, ds.metadata.name as string);
        break;
    }
  }

  private drain(): void {
    for (const [key, item] of [...this.dirty]) {
      if (this.running.has(key)) continue; // picked up again when the running one ends
      this.dirty.delete(key);
      this.running.add(key);
      const p: Promise<void> = this.reconcile(item.r, item.ns, item.name)
        .catch(() => undefined)
        .finally(() => {
          this.running.delete(key);
          this.pending.delete(p);
          if (this.dirty.has(key)) this.enqueue(item.r, item.ns, item.name);
        });
      this.pending.add(p);
    }
  }

  private async reconcile(r: ResourceType, ns: string | undefined, name: string): Promise<void> {
    if (this.stopped) return;
    const obj = this.registry.store.get(r, ns, name);
    if (!obj) return;
    switch (r.kind) {
      case 'Deployment':
        return this.syncDeployment(obj);
      case 'ReplicaSet':
        return this.syncReplicaSet(obj);
      case 'StatefulSet':
        return this.syncStatefulSet(obj);
      case 'DaemonSet':
        return this.syncDaemonSet(obj);
      case 'Pod':
        return this.runPod(obj);
    }
  }

  // ---- Deployment ----------------------------------------------------------------------------

  private async syncDeployment(d: KubeObject): Promise<void> {
    if (d.metadata.deletionTimestamp) return;
    const rsR = this.res('apps', 'replicasets');
    const ns = d.metadata.namespace as string;
    const spec = d['spec'] as { replicas?: number; selector?: LabelSelectorObject; template?: Obj; strategy?: { type?: string }; paused?: boolean };
    const desired = spec.replicas ?? 1;
    const owned = this.registry.store.list(rsR, ns).filter((rs) => isControlledBy(rs, d));
    const hash = templateHash(spec.template ?? {});
    let newRs = owned.find((rs) => rs.metadata.labels?.['pod-template-hash'] === hash);
    const oldRs = owned.filter((rs) => rs !== newRs);
    const user = controllerUser('deployment-controller');
    const revisionOf = (rs: KubeObject): number => Number(rs.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
    const maxRevision = owned.reduce((m, rs) => Math.max(m, revisionOf(rs)), 0);

    if (spec.paused) return this.updateDeploymentStatus(d, newRs, owned);
    const oldActive = oldRs.reduce((n, rs) => n + Number((rs['status'] as { replicas?: number } | undefined)?.replicas ?? 0), 0);
    const recreate = spec.strategy?.type === 'Recreate';

    if (!newRs) {
      const template = clone(spec.template ?? {}) as { metadata?: { labels?: Record<string, string> } };
      template.metadata = { ...(template.metadata ?? {}), labels: { ...(template.metadata?.labels ?? {}), 'pod-template-hash': hash } };
      const selector = clone(spec.selector ?? {});
      selector.matchLabels = { ...(selector.matchLabels ?? {}), 'pod-template-hash': hash };
      const rs: KubeObject = {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${d.metadata.name}-${hash}`,
          namespace: ns,
          labels: template.metadata.labels,
          annotations: {
            'deployment.kubernetes.io/desired-replicas': String(desired),
            'deployment.kubernetes.io/max-replicas': String(desired),
            'deployment.kubernetes.io/revision': String(maxRevision + 1),
          },
          ownerReferences: [controllerRef(d) as never],
        },
        spec: { replicas: recreate && oldActive > 0 ? 0 : desired, selector, template },
      };
      try {
        newRs = await this.registry.create(rsR, ns, rs, { user });
      } catch (err) {
        if (err instanceof ApiError && err.reason === 'AlreadyExists') return;
        throw err;
      }
      await this.annotateRevision(d, maxRevision + 1);
      return;
    }
    if (revisionOf(newRs) < maxRevision) {
      // Rolling back to an older template: it becomes the newest revision again.
      newRs = await this.patchMeta(rsR, newRs, { annotations: { 'deployment.kubernetes.io/revision': String(maxRevision + 1) } });
      await this.annotateRevision(d, maxRevision + 1);
    }
    const newReplicas = Number((newRs['spec'] as { replicas?: number }).replicas ?? 0);
    const newReady = Number((newRs['status'] as { readyReplicas?: number } | undefined)?.readyReplicas ?? 0);
    if (recreate) {
      for (const rs of oldRs) await this.scaleReplicaSet(rs, 0, user);
      if (oldActive === 0 && newReplicas !== desired) await this.scaleReplicaSet(newRs, desired, user);
    } else {
      if (newReplicas !== desired) await this.scaleReplicaSet(newRs, desired, user);
      // Old replica sets go away once the new one is fully ready (a one-step rolling update).
      if (newReady >= desired || !this.opts.kubelet) for (const rs of oldRs) await this.scaleReplicaSet(rs, 0, user);
    }
    await this.cleanupHistory(d, oldRs);
    const fresh = this.registry.store.get(rsR, ns, newRs.metadata.name as string);
    await this.updateDeploymentStatus(
      d,
      fresh,
      this.registry.store.list(rsR, ns).filter((rs) => isControlledBy(rs, d)),
    );
  }

  private async annotateRevision(d: KubeObject, revision: number): Promise<void> {
    if (d.metadata.annotations?.['deployment.kubernetes.io/revision'] === String(revision)) return;
    const current = this.registry.store.get(this.res('apps', 'deployments'), d.metadata.namespace, d.metadata.name as string);
    if (!current) return;
    current.metadata.annotations = { ...(current.metadata.annotations ?? {}), 'deployment.kubernetes.io/revision': String(revision) };
    try {
      this.registry.store.update(this.res('apps', 'deployments'), current, current.metadata.resourceVersion);
    } catch {
      // Retried by the next event.
    }
  }

  private async patchMeta(r: ResourceType, o: KubeObject, meta: { annotations?: Record<string, string> }): Promise<KubeObject> {
    const next = clone(o);
    next.metadata.annotations = { ...(next.metadata.annotations ?? {}), ...(meta.annotations ?? {}) };
    return this.registry.store.update(r, next, o.metadata.resourceVersion);
  }

  private async scaleReplicaSet(rs: KubeObject, replicas: number, user: UserInfo): Promise<void> {
    if (Number((rs['spec'] as { replicas?: number }).replicas ?? 0) === replicas) return;
    await this.registry.patch(
      this.res('apps', 'replicasets'),
      rs.metadata.namespace,
      rs.metadata.name as string,
      'merge',
      {
        metadata: { annotations: { 'deployment.kubernetes.io/desired-replicas': String(replicas) } },
        spec: { replicas },
      },
      { user },
    );
  }

  private async cleanupHistory(d: KubeObject, oldRs: KubeObject[]): Promise<void> {
    const limit = Number((d['spec'] as { revisionHistoryLimit?: number }).revisionHistoryLimit ?? 10);
    const idle = oldRs
      .filter(
        (rs) =>
          Number((rs['spec'] as { replicas?: number }).replicas ?? 0) === 0 && Number((rs['status'] as { replicas?: number } | undefined)?.replicas ?? 0) === 0,
      )
      .sort(
        (a, b) =>
          Number(a.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0) -
          Number(b.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0),
      );
    for (const rs of idle.slice(0, Math.max(0, idle.length - limit))) {
      try {
        await this.registry.delete(
          this.res('apps', 'replicasets'),
          rs.metadata.namespace,
          rs.metadata.name as string,
          {},
          { user: controllerUser('deployment-controller') },
        );
      } catch {
        // Already gone.
      }
    }
  }

  private async updateDeploymentStatus(d: KubeObject, newRs: KubeObject | undefined, owned: KubeObject[]): Promise<void> {
    const sum = (key: string): number => owned.reduce((n, rs) => n + Number((rs['status'] as Obj | undefined)?.[key] ?? 0), 0);
    const desired = Number((d['spec'] as { replicas?: number }).replicas ?? 1);
    const replicas = sum('replicas');
    const ready = sum('readyReplicas');
    const available = sum('availableReplicas');
    const updated = Number((newRs?.['status'] as { replicas?: number } | undefined)?.replicas ?? 0);
    const old = (d['status'] ?? {}) as Obj;
    const prevConditions = (old['conditions'] as Obj[] | undefined) ?? [];
    const now = nowTimestamp();
    const condition = (type: string, status: string, reason: string, message: string): Obj => {
      const prev = prevConditions.find((c) => c['type'] === type);
      const same = prev && prev['status'] === status && prev['reason'] === reason;
      return {
        type,
        status,
        lastUpdateTime: same ? prev['lastUpdateTime'] : now,
        lastTransitionTime: prev && prev['status'] === status ? prev['lastTransitionTime'] : now,
        reason,
        message,
      };
    };
    const complete = updated === desired && replicas === desired && available === desired;
    const status: Obj = {
      observedGeneration: d.metadata.generation,
      replicas,
      updatedReplicas: updated,
      readyReplicas: ready,
      availableReplicas: available,
      ...(replicas - available > 0 ? { unavailableReplicas: replicas - available } : {}),
      conditions: [
        condition(
          'Available',
          available >= desired - maxUnavailable(d, desired) ? 'True' : 'False',
          available >= desired - maxUnavailable(d, desired) ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
          available >= desired - maxUnavailable(d, desired) ? 'Deployment has minimum availability.' : 'Deployment does not have minimum availability.',
        ),
        condition(
          'Progressing',
          'True',
          complete ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated',
          complete ? `ReplicaSet "${newRs?.metadata.name ?? ''}" has successfully progressed.` : `ReplicaSet "${newRs?.metadata.name ?? ''}" is progressing.`,
        ),
      ],
    };
    // getReplicaFailures: a replica set's ReplicaFailure condition is the Deployment's too.
    const failure = [newRs, ...owned]
      .map((rs) => ((rs?.['status'] as Obj | undefined)?.['conditions'] as Obj[] | undefined)?.find((c) => c['type'] === 'ReplicaFailure'))
      .find((c) => c !== undefined);
    if (failure)
      (status['conditions'] as Obj[]).push(condition('ReplicaFailure', String(failure['status']), String(failure['reason']), String(failure['message'])));
    for (const k of ['readyReplicas', 'availableReplicas', 'updatedReplicas', 'replicas']) if (status[k] === 0) delete status[k];
    if (JSON.stringify(stripTimes(status)) === JSON.stringify(stripTimes(old))) return;
    await this.writeStatus(this.res('apps', 'deployments'), d, status);
  }

  private async writeStatus(r: ResourceType, o: KubeObject, status: Obj): Promise<void> {
    const current = this.registry.store.get(r, o.metadata.namespace, o.metadata.name as string);
    if (!current) return;
    current['status'] = status;
    try {
      this.registry.store.update(r, current, current.metadata.resourceVersion);
    } catch (err) {
      if (!(err instanceof ApiError && (err.code === 409 || err.code === 404))) throw err;
      this.enqueue(r, o.metadata.namespace, o.metadata.name as string);
    }
  }

  // ---- ReplicaSet ------------------------------------------------------------------------------

  private async syncReplicaSet(rs: KubeObject): Promise<void> {
    if (rs.metadata.deletionTimestamp) return;
    const spec = rs['spec'] as { replicas?: number; selector?: LabelSelectorObject; template?: Obj };
    const podsR = this.res('', 'pods');
    const ns = rs.metadata.namespace as string;
    const pods = this.registry.store.list(podsR, ns).filter((p) => isControlledBy(p, rs) && !p.metadata.deletionTimestamp && !isFinished(p));
    const desired = spec.replicas ?? 1;
    const user = controllerUser('replicaset-controller');
    let createError: ApiError | undefined;
    if (pods.length < desired) {
      for (let i = pods.length; i < desired; i++) {
        const template = clone(spec.template ?? {}) as { metadata?: Obj; spec?: Obj };
        const pod: KubeObject = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { ...(template.metadata ?? {}), generateName: `${rs.metadata.name}-`, namespace: ns, ownerReferences: [controllerRef(rs) as never] },
          spec: template.spec ?? {},
        };
        delete pod.metadata.name;
        try {
          await this.registry.create(podsR, ns, pod, { user });
        } catch (err) {
          if (!(err instanceof ApiError)) throw err;
          // controller_utils CreatePods: a Warning event, and the error becomes the
          // ReplicaFailure condition (calculateStatus); the next resync tries again.
          createError = err;
          this.recordEvent(rs, 'Warning', 'FailedCreate', `Error creating: ${err.message}`, 'replicaset-controller');
          break;
        }
      }
    } else if (pods.length > desired) {
      // Delete the least useful first: not ready, then newest.
      const victims = [...pods].sort(
        (a, b) => Number(isPodReady(a)) - Number(isPodReady(b)) || String(b.metadata.creationTimestamp).localeCompare(String(a.metadata.creationTimestamp)),
      );
      for (const p of victims.slice(0, pods.length - desired)) {
        try {
          await this.registry.delete(podsR, ns, p.metadata.name as string, {}, { user });
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
      }
    }
    const now = this.registry.store.list(podsR, ns).filter((p) => isControlledBy(p, rs) && !p.metadata.deletionTimestamp && !isFinished(p));
    const ready = now.filter(isPodReady).length;
    const status: Obj = {
      replicas: now.length,
      fullyLabeledReplicas: now.filter((p) => matchesLabelSelectorObject(spec.selector, p.metadata.labels)).length,
      readyReplicas: ready,
      availableReplicas: ready,
      observedGeneration: rs.metadata.generation,
    };
    for (const k of ['fullyLabeledReplicas', 'readyReplicas', 'availableReplicas']) if (status[k] === 0) delete status[k];
    const previous = ((rs['status'] as Obj | undefined)?.['conditions'] as Obj[] | undefined)?.find((c) => c['type'] === 'ReplicaFailure');
    if (createError) {
      const same = previous && previous['message'] === createError.message;
      status['conditions'] = [
        {
          type: 'ReplicaFailure',
          status: 'True',
          lastTransitionTime: same ? previous['lastTransitionTime'] : nowTimestamp(),
          reason: 'FailedCreate',
          message: createError.message,
        },
      ];
    }
    const fresh = this.registry.store.get(this.res('apps', 'replicasets'), ns, rs.metadata.name as string);
    if (fresh && JSON.stringify(fresh['status']) !== JSON.stringify(status)) await this.writeStatus(this.res('apps', 'replicasets'), fresh, status);
  }

  /** An event as client-go's recorder writes it; a repeat for the same object and reason is counted on the first (the correlator). */
  private recordEvent(o: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string, component: string): void {
    const eventsR = this.res('', 'events');
    const ns = o.metadata.namespace as string;
    const now = nowTimestamp();
    const existing = this.registry.store
      .list(eventsR, ns)
      .find((e) => (e['involvedObject'] as Obj | undefined)?.['uid'] === o.metadata.uid && e['reason'] === reason);
    if (existing) {
      const next = clone(existing);
      Object.assign(next, { message, count: Number(existing['count'] ?? 1) + 1, lastTimestamp: now });
      this.registry.store.update(eventsR, next);
      return;
    }
    this.registry.put(eventsR, {
      metadata: { name: `${o.metadata.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace: ns },
      involvedObject: {
        kind: o.kind,
        namespace: ns,
        name: o.metadata.name,
        uid: o.metadata.uid,
        apiVersion: o.apiVersion,
        resourceVersion: o.metadata.resourceVersion,
      },
      reason,
      message,
      source: { component },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type,
      eventTime: null,
      reportingComponent: component,
      reportingInstance: '',
    });
  }

  // ---- StatefulSet -----------------------------------------------------------------------------

  private async syncStatefulSet(sts: KubeObject): Promise<void> {
    if (sts.metadata.deletionTimestamp) return;
    const spec = sts['spec'] as { replicas?: number; template?: Obj };
    const podsR = this.res('', 'pods');
    const ns = sts.metadata.namespace as string;
    const name = sts.metadata.name as string;
    const desired = spec.replicas ?? 1;
    const revision = `${name}-${templateHash(spec.template ?? {})}`;
    const serviceName = (sts['spec'] as { serviceName?: string }).serviceName;
    const user = controllerUser('statefulset-controller');
    const owned = (): KubeObject[] => this.registry.store.list(podsR, ns).filter((p) => isControlledBy(p, sts));
    for (const p of owned()) {
      const ordinal = Number(p.metadata.name?.slice(name.length + 1));
      const stale = p.metadata.labels?.['controller-revision-hash'] !== revision;
      if (ordinal >= desired || stale) {
        try {
          await this.registry.delete(podsR, ns, p.metadata.name as string, {}, { user });
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
      }
    }
    for (let i = 0; i < desired; i++) {
      const podName = `${name}-${i}`;
      if (this.registry.store.get(podsR, ns, podName)) continue;
      const template = clone(spec.template ?? {}) as { metadata?: { labels?: Record<string, string> }; spec?: Obj };
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...(template.metadata ?? {}),
          name: podName,
          namespace: ns,
          labels: {
            ...(template.metadata?.labels ?? {}),
            'controller-revision-hash': revision,
            'statefulset.kubernetes.io/pod-name': podName,
            'apps.kubernetes.io/pod-index': String(i),
          },
          ownerReferences: [controllerRef(sts) as never],
        },
        spec: { ...(template.spec ?? {}), hostname: podName, ...(serviceName ? { subdomain: serviceName } : {}) },
      };
      try {
        await this.registry.create(podsR, ns, pod, { user });
      } catch (err) {
        if (!(err instanceof ApiError && err.reason === 'AlreadyExists')) throw err;
      }
    }
    const pods = owned();
    const ready = pods.filter(isPodReady).length;
    const current = pods.filter((p) => p.metadata.labels?.['controller-revision-hash'] === revision).length;
    await this.maybeStatus(this.res('apps', 'statefulsets'), sts, {
      observedGeneration: sts.metadata.generation,
      replicas: pods.length,
      readyReplicas: ready,
      currentReplicas: current,
      updatedReplicas: current,
      availableReplicas: ready,
      currentRevision: revision,
      updateRevision: revision,
      collisionCount: 0,
    });
  }

  // ---- DaemonSet -------------------------------------------------------------------------------

  private async syncDaemonSet(ds: KubeObject): Promise<void> {
    if (ds.metadata.deletionTimestamp) return;
    const spec = ds['spec'] as { template?: { metadata?: { labels?: Record<string, string> }; spec?: Obj } };
    const podsR = this.res('', 'pods');
    const ns = ds.metadata.namespace as string;
    const hash = templateHash(spec.template ?? {});
    const user = controllerUser('daemon-set-controller');
    const nodes = this.registry.store.list(this.res('', 'nodes')).filter((n) => nodeMatches(n, spec.template?.spec));
    const owned = (): KubeObject[] => this.registry.store.list(podsR, ns).filter((p) => isControlledBy(p, ds));
    for (const p of owned()) {
      const nodeName = (p['spec'] as { nodeName?: string }).nodeName;
      if (!nodes.some((n) => n.metadata.name === nodeName) || p.metadata.labels?.['controller-revision-hash'] !== hash) {
        try {
          await this.registry.delete(podsR, ns, p.metadata.name as string, {}, { user });
        } catch (err) {
          if (!(err instanceof ApiError && err.code === 404)) throw err;
        }
      }
    }
    const existing = owned();
    for (const node of nodes) {
      if (existing.some((p) => (p['spec'] as { nodeName?: string }).nodeName === node.metadata.name)) continue;
      const template = clone(spec.template ?? {});
      const pod: KubeObject = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          ...((template.metadata ?? {}) as Obj),
          generateName: `${ds.metadata.name}-`,
          namespace: ns,
          labels: { ...(template.metadata?.labels ?? {}), 'controller-revision-hash': hash, 'pod-template-generation': String(ds.metadata.generation ?? 1) },
          ownerReferences: [controllerRef(ds) as never],
        },
        spec: {
          ...(template.spec ?? {}),
          nodeName: node.metadata.name,
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [node.metadata.name] }] }],
              },
            },
          },
        },
      };
      await this.registry.create(podsR, ns, pod, { user });
    }
    const pods = owned();
    const ready = pods.filter(isPodReady).length;
    await this.maybeStatus(this.res('apps', 'daemonsets'), ds, {
      currentNumberScheduled: pods.length,
      numberMisscheduled: 0,
      desiredNumberScheduled: nodes.length,
      numberReady: ready,
      observedGeneration: ds.metadata.generation,
      updatedNumberScheduled: pods.filter((p) => p.metadata.labels?.['controller-revision-hash'] === hash).length,
      numberAvailable: ready,
      ...(nodes.length - ready > 0 ? { numberUnavailable: nodes.length - ready } : {}),
    });
  }

  private async maybeStatus(r: ResourceType, o: KubeObject, status: Obj): Promise<void> {
    const fresh = this.registry.store.get(r, o.metadata.namespace, o.metadata.name as string);
    if (fresh && JSON.stringify(fresh['status']) !== JSON.stringify(status)) await this.writeStatus(r, fresh, status);
  }

  // ---- scheduler + kubelet -----------------------------------------------------------------------

  private kubeletWants(p: KubeObject): boolean {
    if (p.metadata.deletionTimestamp) return false;
    const phase = (p['status'] as { phase?: string } | undefined)?.phase;
    return phase === undefined || phase === 'Pending';
  }

  private async runPod(p: KubeObject): Promise<void> {
    if (!this.kubeletWants(p)) return;
    const podsR = this.res('', 'pods');
    const spec = (p['spec'] ?? {}) as {
      nodeName?: string;
      nodeSelector?: Record<string, string>;
      containers?: Obj[];
      initContainers?: Obj[];
      schedulingGates?: unknown[];
    };
    if ((spec.schedulingGates ?? []).length > 0) return;
    let nodeName = spec.nodeName;
    let node: KubeObject | undefined;
    if (!nodeName) {
      const nodes = this.registry.store.list(this.res('', 'nodes')).filter((n) => nodeMatches(n, spec as Obj) && nodeReady(n));
      if (nodes.length === 0) return; // stays Pending, as with no schedulable node
      node = nodes[this.nodeCursor++ % nodes.length] as KubeObject;
      nodeName = node.metadata.name as string;
    } else {
      node = this.registry.store.get(this.res('', 'nodes'), undefined, nodeName);
    }
    if (this.opts.podStartDelayMs) await new Promise((r) => setTimeout(r, this.opts.podStartDelayMs));
    const current = this.registry.store.get(podsR, p.metadata.namespace, p.metadata.name as string);
    if (!current || !this.kubeletWants(current) || current.metadata.uid !== p.metadata.uid) return;
    const now = nowTimestamp();
    const n = this.nextPodIp++;
    const hostIP =
      ((node?.['status'] as { addresses?: { type: string; address: string }[] } | undefined)?.addresses ?? []).find((a) => a.type === 'InternalIP')?.address ??
      '10.0.0.10';
    const containerStatus = (c: Obj, i: number): Obj => ({
      name: c['name'],
      state: { running: { startedAt: now } },
      lastState: {},
      ready: true,
      restartCount: 0,
      image: c['image'],
      imageID: `${String(c['image'])}@sha256:${createHash('sha256').update(String(c['image'])).digest('hex')}`,
      containerID: `containerd://${createHash('sha256').update(`${p.metadata.uid}/${i}`).digest('hex')}`,
      started: true,
    });
    const podIP = `10.244.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    const cond = (type: string): Obj => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: now });
    const next = clone(current);
    (next['spec'] as Obj)['nodeName'] = nodeName;
    next['status'] = {
      phase: 'Running',
      conditions: [cond('PodReadyToStartContainers'), cond('Initialized'), cond('Ready'), cond('ContainersReady'), cond('PodScheduled')],
      hostIP,
      hostIPs: [{ ip: hostIP }],
      podIP,
      podIPs: [{ ip: podIP }],
      startTime: now,
      containerStatuses: (spec.containers ?? []).map(containerStatus),
      ...(spec.initContainers?.length
        ? {
            initContainerStatuses: spec.initContainers.map((c, i) => ({
              ...containerStatus(c, 100 + i),
              state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: now, finishedAt: now } },
              ready: true,
              started: false,
            })),
          }
        : {}),
      qosClass: (current['status'] as { qosClass?: string } | undefined)?.qosClass ?? 'BestEffort',
    };
    try {
      this.registry.store.update(podsR, next, current.metadata.resourceVersion);
    } catch (err) {
      if (err instanceof ApiError && err.code === 409) this.enqueue(podsR, p.metadata.namespace, p.metadata.name as string);
      else if (!(err instanceof ApiError && err.code === 404)) throw err;
    }
  }
}

function isFinished(p: KubeObject): boolean {
  const phase = (p['status'] as { phase?: string } | undefined)?.phase;
  return phase === 'Succeeded' || phase === 'Failed';
}

function nodeReady(n: KubeObject): boolean {
  if ((n['spec'] as { unschedulable?: boolean } | undefined)?.unschedulable) return false;
  const conditions = (n['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  const ready = conditions.find((c) => c.type === 'Ready');
  return !ready || ready.status === 'True';
}

function nodeMatches(n: KubeObject, podSpec: Obj | undefined): boolean {
  const selector = (podSpec?.['nodeSelector'] as Record<string, string> | undefined) ?? {};
  return Object.entries(selector).every(([k, v]) => n.metadata.labels?.[k] === v);
}

function maxUnavailable(d: KubeObject, desired: number): number {
  const v = (d['spec'] as { strategy?: { rollingUpdate?: { maxUnavailable?: number | string } } }).strategy?.rollingUpdate?.maxUnavailable ?? '25%';
  if (typeof v === 'number') return v;
  const m = /^(\d+)%$/.exec(v);
  return m ? Math.floor((Number(m[1]) * desired) / 100) : Number(v) || 0;
}

function stripTimes(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v ?? {}, (k, val: unknown) => (k === 'lastUpdateTime' || k === 'lastTransitionTime' ? undefined : val)));
}
