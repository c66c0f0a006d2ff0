/**
 * Where the pod-level parts of a workload live: a Pod's own metadata and spec, a
 * Deployment's `spec.template`. Pod-level mutators act on both kinds through these.
 */
import { DraftScope, isRecord, type KubeObject, type WorkloadKind } from './types.ts';

export type StringMap = Record<string, string>;

export interface Container {
  name?: string;
  image?: string;
  env?: Array<Record<string, unknown>>;
  resources?: { limits?: StringMap; requests?: StringMap; [k: string]: unknown };
  [k: string]: unknown;
}

/** Metadata objects a labels/annotations mutator rewrites: the object's own and, for a Deployment, its pod template's. */
export function metadataOf(object: KubeObject, kind: WorkloadKind): Array<{ where: 'object' | 'template'; meta: Record<string, unknown>; path: Path }> {
  const out: Array<{ where: 'object' | 'template'; meta: Record<string, unknown>; path: Path }> = [];
  if (isRecord(object.metadata)) out.push({ where: 'object', meta: object.metadata, path: ['metadata'] });
  if (kind === 'Deployment') {
    const tmpl = templateOf(object);
    if (tmpl && isRecord(tmpl.metadata)) out.push({ where: 'template', meta: tmpl.metadata, path: ['spec', 'template', 'metadata'] });
  }
  return out;
}

export function templateOf(object: KubeObject): Record<string, unknown> | undefined {
  const spec = object.spec;
  if (!isRecord(spec) || !isRecord(spec.template)) return undefined;
  return spec.template;
}

/** The pod spec: `spec` of a Pod, `spec.template.spec` of a Deployment. */
export function podSpecOf(object: KubeObject, kind: WorkloadKind): Record<string, unknown> | undefined {
  if (kind === 'Pod') return isRecord(object.spec) ? object.spec : undefined;
  const tmpl = templateOf(object);
  return tmpl && isRecord(tmpl.spec) ? tmpl.spec : undefined;
}

/** Pod labels: the Pod's own, or the Deployment template's. */
export function podLabelsOf(object: KubeObject, kind: WorkloadKind): StringMap {
  const meta = kind === 'Pod' ? object.metadata : templateOf(object)?.metadata;
  return isRecord(meta) && isRecord(meta.labels) ? (meta.labels as StringMap) : {};
}

/** Containers and init containers (ephemeral containers are added by `kubectl debug`, never mutated). */
export function containersOf(object: KubeObject, kind: WorkloadKind): Container[] {
  const spec = podSpecOf(object, kind);
  if (!spec) return [];
  const out: Container[] = [];
  for (const field of ['initContainers', 'containers']) {
    const list = spec[field];
    if (Array.isArray(list)) for (const c of list) if (isRecord(c)) out.push(c as Container);
  }
  return out;
}

/** Where a container is: `['spec', 'containers', 0]`, `['spec', 'template', 'spec', 'initContainers', 1]`. */
export type Path = ReadonlyArray<string | number>;

/** Containers and init containers with where they are, for editing them through a `Draft`. */
export function containerEntries(object: KubeObject, kind: WorkloadKind): Array<{ path: Path; container: Container }> {
  const spec = podSpecOf(object, kind);
  if (!spec) return [];
  const base = kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec'];
  const out: Array<{ path: Path; container: Container }> = [];
  for (const field of ['initContainers', 'containers']) {
    const list = spec[field];
    if (Array.isArray(list)) list.forEach((c, i) => isRecord(c) && out.push({ path: [...base, field, i], container: c as Container }));
  }
  return out;
}

/**
 * Copy-on-write editing at exactly the places a mutator changes. `at(path)` hands out the
 * object (or array) at `path` as this draft's own, shallowly copying it and every container
 * above it the first time; everything else stays shared with the input. `result()` is the
 * input itself when nothing was asked for, so an idle mutator hands back its input, and the
 * chain's diff and patch check skip every shared subtree by identity. Within one run of the
 * chain the drafts share a scope: what one mutator copied, the next changes in place, so the
 * path from the root to a container is copied once per review, not once per mutator.
 */
export class Draft {
  private root: KubeObject;

  /**
   * `scope`: the chain run's copies (`MutationContext.drafts`), which this draft may change in
   * place; by default a scope of its own, so it copies everything it changes.
   */
  constructor(
    private readonly original: KubeObject,
    private readonly scope: DraftScope = new DraftScope(),
  ) {
    this.root = original;
  }

  private own<T>(v: T): T {
    if (this.scope.owned.has(v)) return v;
    const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as T;
    this.scope.owned.add(copy);
    return copy;
  }

  /** The object or array at `path`, ready to be changed. Throws when there is none there. */
  at(path: Path): Record<string, unknown> & Array<unknown> {
    this.scope.edits++;
    let cur = (this.root = this.own(this.root)) as Record<string | number, unknown>;
    for (const key of path) {
      const next = cur[key];
      if (typeof next !== 'object' || next === null) throw new Error(`no object at /${path.join('/')}`);
      cur = cur[key] = this.own(next) as Record<string | number, unknown>;
    }
    return cur as Record<string, unknown> & Array<unknown>;
  }

  /** Sets the value at `path` (whose parent must exist). */
  set(path: Path, value: unknown): void {
    this.at(path.slice(0, -1))[path[path.length - 1] as string] = value;
  }

  result(): KubeObject {
    return this.root;
  }
}

/**
 * Copy-on-write editing: `change` gets a deep copy and says whether it changed anything;
 * the copy is returned only then, so an idle mutator hands back its input.
 */
export function edit(object: KubeObject, change: (draft: KubeObject) => boolean): KubeObject {
  const draft = jsonClone(object);
  return change(draft) ? draft : object;
}

/**
 * Like `edit`, but copies only what the mutator touches: the objects along each path are
 * copied shallowly and the last one deeply, everything else is shared with the input (a
 * 3 KiB Pod cloned whole six times per review was most of the admission's CPU time).
 */
export function editAt(object: KubeObject, paths: ReadonlyArray<readonly string[]>, change: (draft: KubeObject) => boolean): KubeObject {
  const draft: KubeObject = { ...object };
  const copies = new Set<unknown>([draft]);
  for (const path of paths) {
    let dst = draft as Record<string, unknown>;
    for (let i = 0; i < path.length; i++) {
      const k = path[i]!;
      const v = dst[k];
      if (typeof v !== 'object' || v === null) break;
      if (!copies.has(v)) {
        dst[k] = i === path.length - 1 ? jsonClone(v) : Array.isArray(v) ? [...v] : { ...v };
        copies.add(dst[k]);
      }
      dst = dst[k] as Record<string, unknown>;
    }
  }
  return change(draft) ? draft : object;
}

/** The controlling owner (ownerReferences with controller: true). */
export function controllerOf(object: KubeObject): { kind: string; name: string } | undefined {
  const meta = object.metadata;
  if (!isRecord(meta) || !Array.isArray(meta.ownerReferences)) return undefined;
  for (const ref of meta.ownerReferences) {
    if (isRecord(ref) && ref.controller === true && typeof ref.kind === 'string' && typeof ref.name === 'string') return { kind: ref.kind, name: ref.name };
  }
  return undefined;
}

/**
 * A deep copy of a JSON value (objects, arrays, strings, numbers, booleans, null). A plain
 * recursive copy: several times faster than a JSON round trip or structuredClone for API
 * objects, and admission copies parts of every Pod it mutates.
 */
export function jsonClone<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const out = new Array(value.length);
    for (let i = 0; i < value.length; i++) out[i] = jsonClone(value[i]);
    return out as T;
  }
  const out: Record<string, unknown> = {};
  for (const k in value as Record<string, unknown>) {
    const v = (value as Record<string, unknown>)[k];
    // JSON has no undefined: a key set to undefined disappears, as JSON.stringify does.
    if (v !== undefined) out[k] = jsonClone(v);
  }
  return out as T;
}
