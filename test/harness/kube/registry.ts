// The generic registry of the double (k8s.io/apiserver's registry/generic Store plus the
// built-in admission plugins clients notice): create/update/patch/delete with defaulting,
// admission webhooks, validation, optimistic concurrency, generateName, finalizers,
// owner-reference garbage collection and namespace lifecycle. HTTP-free: the server,
// the controllers and the programmatic API all write through it.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';

import type { AdmissionAttributes, AdmissionOperation, GroupVersionKind, WebhookAdmission } from './admission.ts';
import type { UserInfo } from './auth.ts';
import { applyPatchOfType, type PatchType } from './patch.ts';
import { evaluatePodSpec, formatLevelVersion, POD_CONTROLLER_KINDS, podTemplateSpec, policyFromLabels } from './podsecurity.ts';
import { apiVersionOf, type ResourceTable, type ResourceType } from './resources.ts';
import {
  formatLabelSelectorObject,
  type LabelSelectorObject,
  matchesFieldSelector,
  matchesLabelSelector,
  parseFieldSelector,
  parseLabelSelector,
} from './selectors.ts';
import { ApiError, badRequest, conflict, failure, forbidden, invalid, notFound } from './status.ts';
import { clone, type KubeObject, type ObjectStore } from './store.ts';
import { applyDefaults, nowTimestamp, prepareForCreate, prepareForUpdate, validateCreate, validateUpdate } from './strategies.ts';

export interface RequestContext {
  user: UserInfo;
  dryRun?: boolean;
  fieldManager?: string;
  /** Admission warnings, sent back as HTTP Warning headers. */
  warnings?: string[];
}

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

export interface ListResult {
  items: KubeObject[];
  resourceVersion: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  preconditions?: { uid?: string; resourceVersion?: string };
  gracePeriodSeconds?: number;
}

export interface DeleteResult {
  object: KubeObject;
  /** 200 when gone, 202 when deletion waits on finalizers or namespace cleanup. */
  code: 200 | 202;
}

const GENERATE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const IMMORTAL_NAMESPACES = new Set(['default', 'kube-system', 'kube-public']);
const SA_TOKEN_MOUNT = '/var/run/secrets/kubernetes.io/serviceaccount';

export const GC_USER: UserInfo = {
  username: 'system:serviceaccount:kube-system:generic-garbage-collector',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
};
export const NAMESPACE_CONTROLLER_USER: UserInfo = {
  username: 'system:serviceaccount:kube-system:namespace-controller',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
};

function randomSuffix(n = 5): string {
  let s = '';
  for (let i = 0; i < n; i++) s += GENERATE_ALPHABET[Math.floor(Math.random() * GENERATE_ALPHABET.length)];
  return s;
}

export class Registry {
  readonly table: ResourceTable;
  readonly store: ObjectStore;
  admission: WebhookAdmission | undefined;
  private nextServiceIp = 10;
  /** Background work (garbage collection, namespace cleanup) still running. */
  private readonly pending = new Set<Promise<unknown>>();

  constructor(table: ResourceTable, store: ObjectStore, admission?: WebhookAdmission) {
    this.table = table;
    this.store = store;
    this.admission = admission;
  }

  resource(group: string, plural: string): ResourceType {
    return this.table.require(group, plural);
  }

  // ---- reads -------------------------------------------------------------------------------

  get(r: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const obj = this.store.get(r, namespace, name);
    if (!obj) throw notFound(r, name);
    return obj;
  }

  tryGet(r: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.store.get(r, namespace, name);
  }

  list(r: ResourceType, namespace: string | undefined, opts: ListOptions = {}): ListResult {
    const labels = parseLabelSelector(opts.labelSelector);
    const fields = parseFieldSelector(opts.fieldSelector, r.fieldSelectors ?? []);
    const resourceVersion = String(this.store.currentResourceVersion());
    let items = this.store.list(r, namespace).filter((o) => matchesLabelSelector(labels, o.metadata.labels) && matchesFieldSelector(fields, o));
    if (opts.continue) {
      let after: string;
      try {
        after = (JSON.parse(Buffer.from(opts.continue, 'base64url').toString('utf8')) as { start: string }).start;
      } catch {
        throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}` > after);
    }
    if (opts.limit && opts.limit > 0 && items.length > opts.limit) {
      const page = items.slice(0, opts.limit);
      const last = page[page.length - 1] as KubeObject;
      const token = Buffer.from(
        JSON.stringify({ v: 'meta.k8s.io/v1', rv: Number(resourceVersion), start: `${last.metadata.namespace ?? ''}/${last.metadata.name}` }),
      ).toString('base64url');
      return { items: page.map(stripTypeMeta), resourceVersion, continue: token, remainingItemCount: items.length - page.length };
    }
    return { items: items.map(stripTypeMeta), resourceVersion };
  }

  // ---- create --------------------------------------------------------------------------------

  async create(r: ResourceType, namespace: string | undefined, body: unknown, ctx: RequestContext): Promise<KubeObject> {
    let obj = this.decode(r, body);
    if (r.namespaced) {
      if (!namespace && !obj.metadata.namespace) throw badRequest('the server could not find the requested resource');
      if (obj.metadata.namespace && namespace && obj.metadata.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      obj.metadata.namespace = namespace ?? obj.metadata.namespace;
    } else {
      delete obj.metadata.namespace;
    }
    applyDefaults(r, obj);
    this.admitNamespaceLifecycle(r, obj.metadata.namespace, 'CREATE');
    if (r.kind === 'Pod') this.admitPodCreate(obj);
    obj = (await this.runAdmission(
      {
        resource: r,
        kind: kindOf(r),
        operation: 'CREATE',
        namespace: obj.metadata.namespace,
        name: obj.metadata.name,
        object: obj,
        user: ctx.user,
        dryRun: !!ctx.dryRun,
        options: ctx.fieldManager ? { fieldManager: ctx.fieldManager } : {},
      },
      ctx,
    )) as KubeObject;
    // BeforeCreate: system fields are filled after mutating admission, as in the real server.
    if (!obj.metadata.name && obj.metadata.generateName) obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
    obj.metadata.uid = randomUUID();
    obj.metadata.creationTimestamp = nowTimestamp();
    delete obj.metadata.resourceVersion;
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.deletionGracePeriodSeconds;
    delete obj.metadata.generation;
    prepareForCreate(r, obj);
    if (r.kind === 'Service') this.allocateClusterIp(obj);
    const errors = validateCreate(r, obj);
    if (errors.length) throw invalid(r, obj.metadata.name ?? '', errors);
    // Validating admission runs after validation, on the object as stored (name generated).
    this.admitPodSecurity(r, obj, undefined, ctx);
    if (ctx.dryRun) return obj;
    for (let attempt = 0; ; attempt++) {
      try {
        return this.store.create(r, obj);
      } catch (err) {
        // A generated name that collides is retried, as the real server's name generator does.
        if (
          err instanceof ApiError &&
          err.reason === 'AlreadyExists' &&
          obj.metadata.generateName &&
          attempt < 8 &&
          obj.metadata.name?.startsWith(obj.metadata.generateName)
        ) {
          obj.metadata.name = `${obj.metadata.generateName}${randomSuffix()}`;
          continue;
        }
        throw err;
      }
    }
  }

  // ---- update / patch --------------------------------------------------------------------------

  async update(r: ResourceType, namespace: string | undefined, name: string, body: unknown, ctx: RequestContext, subresource?: string): Promise<KubeObject> {
    const next = this.decode(r, body);
    if (next.metadata.name && next.metadata.name !== name) {
      throw badRequest(`the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    next.metadata.name = name;
    if (r.namespaced) {
      if (next.metadata.namespace && next.metadata.namespace !== namespace) {
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      next.metadata.namespace = namespace;
    }
    const rv = next.metadata.resourceVersion;
    for (let attempt = 0; ; attempt++) {
      const old = this.get(r, namespace, name);
      if (rv && rv !== old.metadata.resourceVersion) throw conflict(r, name);
      if (next.metadata.uid && next.metadata.uid !== old.metadata.uid) {
        throw conflict(r, name, `Precondition failed: UID in precondition: ${next.metadata.uid}, UID in object meta: ${old.metadata.uid}`);
      }
      try {
        return await this.applyUpdate(r, old, clone(next), ctx, subresource, old.metadata.resourceVersion);
      } catch (err) {
        // An unconditional update (no resourceVersion) that raced another writer is retried,
        // as GuaranteedUpdate does; a conditional one reports the conflict.
        if (err instanceof ApiError && err.reason === 'Conflict' && !rv && attempt < 5) continue;
        throw err;
      }
    }
  }

  async patch(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    type: Exclude<PatchType, 'apply'>,
    patchBody: unknown,
    ctx: RequestContext,
    subresource?: string,
  ): Promise<KubeObject> {
    for (let attempt = 0; ; attempt++) {
      const old = this.get(r, namespace, name);
      let patched: KubeObject;
      try {
        patched = applyPatchOfType(type, old as Record<string, unknown>, patchBody) as KubeObject;
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw badRequest((err as Error).message);
      }
      if (!patched || typeof patched !== 'object' || typeof patched.metadata !== 'object' || patched.metadata === null) {
        throw badRequest('the patch removed metadata from the object');
      }
      const rv = patched.metadata.resourceVersion;
      // A patch that names a resourceVersion is a precondition; otherwise retry on conflict.
      const explicitRv = rv !== old.metadata.resourceVersion ? rv : hasResourceVersion(patchBody) ? rv : undefined;
      if (explicitRv !== undefined && explicitRv !== '' && explicitRv !== old.metadata.resourceVersion) throw conflict(r, name);
      if (patched.metadata.name !== old.metadata.name) {
        throw badRequest(`metadata.name: Invalid value: "${String(patched.metadata.name)}": field is immutable`);
      }
      if (patched.metadata.uid !== old.metadata.uid) {
        throw conflict(r, name, `Precondition failed: UID in precondition: ${String(patched.metadata.uid)}, UID in object meta: ${old.metadata.uid}`);
      }
      patched.apiVersion = old.apiVersion;
      patched.kind = old.kind;
      try {
        return await this.applyUpdate(r, old, patched, ctx, subresource, old.metadata.resourceVersion);
      } catch (err) {
        if (err instanceof ApiError && err.reason === 'Conflict' && explicitRv === undefined && attempt < 5) continue;
        throw err;
      }
    }
  }

  private async applyUpdate(
    r: ResourceType,
    old: KubeObject,
    next: KubeObject,
    ctx: RequestContext,
    subresource: string | undefined,
    expectedRv: string | undefined,
  ): Promise<KubeObject> {
    if (subresource === undefined || subresource === 'resize') applyDefaults(r, next);
    let obj = (await this.runAdmission(
      {
        resource: r,
        subresource,
        kind: kindOf(r),
        operation: 'UPDATE',
        namespace: old.metadata.namespace,
        name: old.metadata.name,
        object: next,
        oldObject: old,
        user: ctx.user,
        dryRun: !!ctx.dryRun,
        options: ctx.fieldManager ? { fieldManager: ctx.fieldManager } : {},
      },
      ctx,
    )) as KubeObject;
    obj = prepareForUpdate(r, obj, old, subresource);
    const errors = validateUpdate(r, obj, old, subresource);
    if (errors.length) throw invalid(r, old.metadata.name ?? '', errors);
    if (subresource === undefined) this.admitPodSecurity(r, obj, old, ctx);
    if (ctx.dryRun) return obj;
    if (
      isDeepStrictEqual(
        { ...obj, metadata: { ...obj.metadata, resourceVersion: undefined } },
        { ...old, metadata: { ...old.metadata, resourceVersion: undefined } },
      )
    ) {
      // A no-op update does not bump resourceVersion or emit an event.
      return old;
    }
    if (old.metadata.deletionTimestamp && (obj.metadata.finalizers ?? []).length === 0) {
      // The last finalizer is gone: the deferred deletion completes.
      const updated = this.store.update(r, obj, expectedRv);
      const gone = this.store.delete(r, updated.metadata.namespace, updated.metadata.name as string);
      this.afterDelete(gone, 'Background');
      return gone;
    }
    return this.store.update(r, obj, expectedRv);
  }

  // ---- delete ----------------------------------------------------------------------------------

  async delete(r: ResourceType, namespace: string | undefined, name: string, opts: DeleteOptions, ctx: RequestContext): Promise<DeleteResult> {
    const old = this.get(r, namespace, name);
    if (opts.preconditions?.uid && opts.preconditions.uid !== old.metadata.uid) {
      throw conflict(r, name, `Precondition failed: UID in precondition: ${opts.preconditions.uid}, UID in object meta: ${old.metadata.uid}`);
    }
    if (opts.preconditions?.resourceVersion && opts.preconditions.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(
        r,
        name,
        `Precondition failed: ResourceVersion in precondition: ${opts.preconditions.resourceVersion}, ResourceVersion in object meta: ${old.metadata.resourceVersion}`,
      );
    }
    if (r.kind === 'Namespace' && r.group === '' && IMMORTAL_NAMESPACES.has(name)) {
      throw forbidden(r, name, `this namespace may not be deleted`);
    }
    await this.runAdmission(
      {
        resource: r,
        kind: kindOf(r),
        operation: 'DELETE',
        namespace: old.metadata.namespace,
        name,
        oldObject: old,
        user: ctx.user,
        dryRun: !!ctx.dryRun,
        options: {},
      },
      ctx,
    );
    if (ctx.dryRun) return { object: old, code: 200 };

    if (r.kind === 'Namespace' && r.group === '') return this.deleteNamespace(r, old);
    if ((old.metadata.finalizers ?? []).length > 0) {
      if (old.metadata.deletionTimestamp) return { object: old, code: 202 };
      const marked = clone(old);
      marked.metadata.deletionTimestamp = nowTimestamp();
      marked.metadata.deletionGracePeriodSeconds = 0;
      return { object: this.store.update(r, marked, old.metadata.resourceVersion), code: 202 };
    }
    const policy = opts.propagationPolicy ?? 'Background';
    if (policy === 'Foreground') await this.collectDependents(old, 'Foreground');
    const gone = this.store.delete(r, namespace, name, old.metadata.resourceVersion);
    this.afterDelete(gone, policy);
    return { object: gone, code: 200 };
  }

  async deleteCollection(
    r: ResourceType,
    namespace: string | undefined,
    listOpts: ListOptions,
    opts: DeleteOptions,
    ctx: RequestContext,
  ): Promise<KubeObject[]> {
    const { items } = this.list(r, namespace, listOpts);
    const deleted: KubeObject[] = [];
    for (const item of items) {
      try {
        deleted.push((await this.delete(r, item.metadata.namespace, item.metadata.name as string, opts, ctx)).object);
      } catch (err) {
        if (!(err instanceof ApiError && err.code === 404)) throw err;
      }
    }
    return deleted;
  }

  /** Waits for background garbage collection and namespace cleanup to finish. */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** Background and Orphan propagation run after the owner is gone (Foreground ran before). */
  private afterDelete(gone: KubeObject, policy: 'Background' | 'Foreground' | 'Orphan'): void {
    if (policy === 'Foreground') return;
    this.background(() => this.collectDependents(gone, policy));
  }

  private background(work: () => Promise<unknown>): void {
    const p: Promise<unknown> = new Promise<void>((resolve) => setImmediate(resolve))
      .then(work)
      .catch(() => undefined)
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  /** The garbage collector: dependents of a deleted owner are deleted or orphaned. */
  private async collectDependents(owner: KubeObject, policy: 'Background' | 'Foreground' | 'Orphan'): Promise<void> {
    const uid = owner.metadata.uid;
    if (!uid) return;
    for (const r of this.table.all) {
      if (r.virtual) continue;
      for (const dep of this.store.list(r, owner.metadata.namespace)) {
        const refs = dep.metadata.ownerReferences ?? [];
        if (!refs.some((ref) => ref.uid === uid)) continue;
        try {
          if (policy === 'Orphan') {
            const next = clone(dep);
            next.metadata.ownerReferences = refs.filter((ref) => ref.uid !== uid);
            if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
            this.store.update(r, next, dep.metadata.resourceVersion);
          } else if (refs.every((ref) => ref.uid === uid || !this.ownerExists(dep, ref.uid))) {
            await this.delete(r, dep.metadata.namespace, dep.metadata.name as string, { propagationPolicy: policy }, { user: GC_USER });
          } else {
            // Another owner is still alive: only drop the reference.
            const next = clone(dep);
            next.metadata.ownerReferences = refs.filter((ref) => ref.uid !== uid);
            this.store.update(r, next, dep.metadata.resourceVersion);
          }
        } catch (err) {
          if (!(err instanceof ApiError && (err.code === 404 || err.code === 409))) throw err;
        }
      }
    }
  }

  private ownerExists(dependent: KubeObject, uid: string): boolean {
    const ref = dependent.metadata.ownerReferences?.find((o) => o.uid === uid);
    if (!ref) return false;
    const r = this.table.byApiVersionKind(ref.apiVersion, ref.kind);
    if (!r) return false;
    return this.store.get(r, dependent.metadata.namespace, ref.name)?.metadata.uid === uid;
  }

  private deleteNamespace(r: ResourceType, ns: KubeObject): DeleteResult {
    if (ns.metadata.deletionTimestamp) return { object: ns, code: 202 };
    const marked = clone(ns);
    marked.metadata.deletionTimestamp = nowTimestamp();
    marked.metadata.deletionGracePeriodSeconds = 0;
    marked['status'] = { phase: 'Terminating' };
    const terminating = this.store.update(r, marked, ns.metadata.resourceVersion);
    const name = ns.metadata.name as string;
    this.background(async () => {
      for (const res of this.table.all) {
        if (!res.namespaced || res.virtual) continue;
        for (const item of this.store.list(res, name)) {
          try {
            const cleared = clone(item);
            if (cleared.metadata.finalizers?.length) {
              delete cleared.metadata.finalizers;
              this.store.update(res, cleared);
            }
            this.store.delete(res, name, item.metadata.name as string);
          } catch (err) {
            if (!(err instanceof ApiError && err.code === 404)) throw err;
          }
        }
      }
      const current = this.store.get(r, undefined, name);
      if (current) this.store.delete(r, undefined, name);
    });
    return { object: terminating, code: 202 };
  }

  // ---- scale subresource ------------------------------------------------------------------------

  getScale(r: ResourceType, namespace: string | undefined, name: string): KubeObject {
    return toScale(this.get(r, namespace, name));
  }

  /** PUT …/scale: only spec.replicas changes; admission sees the autoscaling/v1 Scale. */
  async updateScale(r: ResourceType, namespace: string | undefined, name: string, body: unknown, ctx: RequestContext): Promise<KubeObject> {
    const scale = (body ?? {}) as KubeObject;
    if (scale.kind !== undefined && scale.kind !== 'Scale') throw badRequest(`expected Scale, got ${String(scale.kind)}`);
    const old = this.get(r, namespace, name);
    const rv = scale.metadata?.resourceVersion;
    if (rv && rv !== old.metadata.resourceVersion) throw conflict(r, name);
    const oldScale = toScale(old);
    const next = { ...oldScale, spec: { ...((scale['spec'] as Record<string, unknown> | undefined) ?? {}) } } as KubeObject;
    const admitted = await this.admitSubresource(
      r,
      'scale',
      { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      'UPDATE',
      namespace,
      name,
      next,
      ctx,
      oldScale,
    );
    const replicas = (admitted['spec'] as { replicas?: unknown } | undefined)?.replicas ?? 0;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid({ group: 'autoscaling', kind: 'Scale' }, name, [
        { type: 'FieldValueInvalid', field: 'spec.replicas', value: replicas, detail: 'must be greater than or equal to 0' },
      ]);
    }
    const updated = clone(old);
    (updated['spec'] as Record<string, unknown>)['replicas'] = replicas;
    if (replicas !== (old['spec'] as { replicas?: number }).replicas) updated.metadata.generation = (old.metadata.generation ?? 1) + 1;
    if (ctx.dryRun) return toScale(updated);
    return toScale(this.store.update(r, updated, old.metadata.resourceVersion));
  }

  async patchScale(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    type: Exclude<PatchType, 'apply'>,
    patchBody: unknown,
    ctx: RequestContext,
  ): Promise<KubeObject> {
    const current = this.getScale(r, namespace, name);
    const patched = applyPatchOfType(type, current as Record<string, unknown>, patchBody);
    return this.updateScale(r, namespace, name, patched, ctx);
  }

  // ---- direct access for tests and controllers ---------------------------------------------------

  /** Creates or replaces an object without admission or validation (test fixtures). */
  put(r: ResourceType, obj: KubeObject): KubeObject {
    const o = clone(obj);
    o.apiVersion = apiVersionOf(r);
    o.kind = r.kind;
    o.metadata ??= {};
    if (!r.namespaced) delete o.metadata.namespace;
    else o.metadata.namespace ??= 'default';
    const existing = this.store.get(r, o.metadata.namespace, o.metadata.name as string);
    if (existing) {
      o.metadata.uid ??= existing.metadata.uid;
      o.metadata.creationTimestamp ??= existing.metadata.creationTimestamp;
      return this.store.update(r, o);
    }
    o.metadata.uid ??= randomUUID();
    o.metadata.creationTimestamp ??= nowTimestamp();
    if (r.generation) o.metadata.generation ??= 1;
    return this.store.create(r, o);
  }

  // ---- helpers ------------------------------------------------------------------------------

  private decode(r: ResourceType, body: unknown): KubeObject {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw badRequest(`Object '${r.kind}' is missing in '${JSON.stringify(body)}'`);
    }
    const obj = clone(body) as KubeObject;
    const apiVersion = apiVersionOf(r);
    if (obj.kind !== undefined && obj.kind !== r.kind) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersion})`);
    }
    obj.apiVersion = apiVersion;
    obj.kind = r.kind;
    if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {};
    return obj;
  }

  private async runAdmission(attrs: AdmissionAttributes, ctx: RequestContext): Promise<KubeObject | undefined> {
    if (!this.admission) return attrs.object;
    const result = await this.admission.admit(attrs);
    if (ctx.warnings) ctx.warnings.push(...result.warnings);
    return result.object;
  }

  /** Admission for a subresource write (Eviction, Scale): webhooks only. */
  async admitSubresource(
    r: ResourceType,
    subresource: string,
    kind: GroupVersionKind,
    operation: AdmissionOperation,
    namespace: string | undefined,
    name: string,
    object: KubeObject,
    ctx: RequestContext,
    oldObject?: KubeObject,
  ): Promise<KubeObject> {
    return (await this.runAdmission(
      { resource: r, subresource, kind, operation, namespace, name, object, oldObject, user: ctx.user, dryRun: !!ctx.dryRun, options: {} },
      ctx,
    )) as KubeObject;
  }

  private admitNamespaceLifecycle(r: ResourceType, namespace: string | undefined, op: AdmissionOperation): void {
    if (!r.namespaced || !namespace || op !== 'CREATE') return;
    const ns = this.store.get(this.resource('', 'namespaces'), undefined, namespace);
    if (!ns) throw notFound(this.resource('', 'namespaces'), namespace);
    if (ns.metadata.deletionTimestamp) {
      throw failure(
        403,
        'Forbidden',
        `${r.group ? `${r.plural}.${r.group}` : r.plural} is forbidden: unable to create new content in namespace ${namespace} because it is being terminated`,
        {
          kind: r.plural,
          causes: [{ reason: 'NamespaceTerminating', message: `namespace ${namespace} is being terminated`, field: 'metadata.namespace' }],
        },
      );
    }
  }

  /** The ServiceAccount, Priority and DefaultTolerationSeconds admission plugins. */
  private admitPodCreate(pod: KubeObject): void {
    const spec = (pod['spec'] ??= {}) as Record<string, unknown>;
    const ns = pod.metadata.namespace as string;
    const saName = (spec['serviceAccountName'] as string | undefined) || 'default';
    spec['serviceAccountName'] = saName;
    spec['serviceAccount'] = saName;
    const sa = this.store.get(this.resource('', 'serviceaccounts'), ns, saName);
    if (!sa) {
      throw forbidden(
        this.resource('', 'pods'),
        pod.metadata.name || pod.metadata.generateName,
        `error looking up service account ${ns}/${saName}: serviceaccount "${saName}" not found`,
      );
    }
    const automount = spec['automountServiceAccountToken'] ?? sa['automountServiceAccountToken'] ?? true;
    const containers = [
      ...((spec['containers'] as Record<string, unknown>[] | undefined) ?? []),
      ...((spec['initContainers'] as Record<string, unknown>[] | undefined) ?? []),
    ];
    const alreadyMounted = containers.some((c) =>
      ((c['volumeMounts'] as { mountPath?: string }[] | undefined) ?? []).some((m) => m.mountPath === SA_TOKEN_MOUNT),
    );
    if (automount !== false && !alreadyMounted) {
      const volumeName = `kube-api-access-${randomSuffix()}`;
      const volumes = (spec['volumes'] ??= []) as Record<string, unknown>[];
      volumes.push({
        name: volumeName,
        projected: {
          defaultMode: 420,
          sources: [
            { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
            { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
            { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } },
          ],
        },
      });
      for (const c of containers) {
        const mounts = (c['volumeMounts'] ??= []) as Record<string, unknown>[];
        mounts.push({ name: volumeName, readOnly: true, mountPath: SA_TOKEN_MOUNT });
      }
    }
    spec['priority'] ??= 0;
    spec['preemptionPolicy'] ??= 'PreemptLowerPriority';
    const tolerations = (spec['tolerations'] ??= []) as Record<string, unknown>[];
    for (const key of ['node.kubernetes.io/not-ready', 'node.kubernetes.io/unreachable']) {
      if (!tolerations.some((t) => t['key'] === key && (t['effect'] === 'NoExecute' || t['effect'] === undefined))) {
        tolerations.push({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 });
      }
    }
  }

  /**
   * The PodSecurity validating admission plugin (pod-security-admission's Validate): a pod
   * that violates its namespace's enforce level is refused with 403; a pod controller only
   * gets a warning (HTTP Warning header), as does an admitted pod that violates the warn level.
   * A pod update is judged only when it changes what the policy looks at (isSignificantPodUpdate).
   */
  private admitPodSecurity(r: ResourceType, obj: KubeObject, old: KubeObject | undefined, ctx: RequestContext): void {
    const isPod = r.kind === 'Pod' && r.group === '';
    if (!isPod && !(POD_CONTROLLER_KINDS.has(r.kind) && (r.group === 'apps' || r.group === 'batch' || r.group === ''))) return;
    const labels = this.store.get(this.resource('', 'namespaces'), undefined, obj.metadata.namespace ?? '')?.metadata.labels;
    const policy = policyFromLabels(labels);
    const spec = isPod ? (obj['spec'] as Record<string, unknown> | undefined) : podTemplateSpec(obj);
    if (!spec) return;
    if (isPod) {
      if (old && !significantPodUpdate(obj, old)) return;
      const violation = evaluatePodSpec(policy.enforce.level, spec);
      if (violation) throw forbidden(r, obj.metadata.name, `violates PodSecurity "${formatLevelVersion(policy.enforce)}": ${violation}`);
    }
    const warning = evaluatePodSpec(policy.warn.level, spec);
    if (warning) ctx.warnings?.push(`would violate PodSecurity "${formatLevelVersion(policy.warn)}": ${warning}`);
  }

  private allocateClusterIp(svc: KubeObject): void {
    const spec = (svc['spec'] ??= {}) as Record<string, unknown>;
    if (spec['type'] === 'ExternalName') return;
    if (spec['clusterIP'] === undefined || spec['clusterIP'] === '') {
      const n = this.nextServiceIp++;
      spec['clusterIP'] = `10.96.${Math.floor(n / 250)}.${(n % 250) + 1}`;
    }
    spec['clusterIPs'] ??= [spec['clusterIP']];
  }
}

export function toScale(o: KubeObject): KubeObject {
  const spec = (o['spec'] ?? {}) as { replicas?: number; selector?: LabelSelectorObject };
  const status = (o['status'] ?? {}) as { replicas?: number };
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: o.metadata.name,
      namespace: o.metadata.namespace,
      uid: o.metadata.uid,
      resourceVersion: o.metadata.resourceVersion,
      creationTimestamp: o.metadata.creationTimestamp,
    },
    spec: { replicas: spec.replicas ?? 0 },
    status: { replicas: status.replicas ?? 0, selector: formatLabelSelectorObject(spec.selector) },
  };
}

export function kindOf(r: ResourceType): GroupVersionKind {
  return { group: r.group, version: r.version, kind: r.kind };
}

/** Items of a typed list carry no apiVersion/kind on the wire. */
function stripTypeMeta(o: KubeObject): KubeObject {
  const { apiVersion: _a, kind: _k, ...rest } = o;
  return rest as KubeObject;
}

/** As pod-security-admission's isSignificantPodUpdate: container count, images or the seccomp alpha annotations changed. */
function significantPodUpdate(pod: KubeObject, old: KubeObject): boolean {
  const images = (o: KubeObject): string => {
    const spec = (o['spec'] ?? {}) as Record<string, Array<{ image?: string }> | undefined>;
    return JSON.stringify(['containers', 'initContainers', 'ephemeralContainers'].map((f) => (spec[f] ?? []).map((c) => c.image)));
  };
  const seccomp = (o: KubeObject): string =>
    JSON.stringify(
      Object.entries(o.metadata.annotations ?? {})
        .filter(([k]) => k.includes('seccomp.security.alpha.kubernetes.io'))
        .sort(),
    );
  return images(pod) !== images(old) || seccomp(pod) !== seccomp(old);
}

function hasResourceVersion(patchBody: unknown): boolean {
  if (Array.isArray(patchBody)) {
    return patchBody.some((op) => typeof op === 'object' && op !== null && (op as { path?: string }).path === '/metadata/resourceVersion');
  }
  const meta = (patchBody as { metadata?: { resourceVersion?: unknown } } | null)?.metadata;
  return typeof meta === 'object' && meta !== null && meta.resourceVersion !== undefined && meta.resourceVersion !== null;
}
