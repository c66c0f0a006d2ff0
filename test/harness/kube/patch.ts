// The three patch formats kube-apiserver accepts for built-in types: JSON Patch (RFC 6902),
// JSON merge patch (RFC 7386) and strategic merge patch (the directives kubectl emits:
// merge keys, $patch, $retainKeys, $setElementOrder, $deleteFromPrimitiveList).
import type { Operation } from 'fast-json-patch';
import fastJsonPatch from 'fast-json-patch';

import { badRequest, failure, unsupportedMediaType } from './status.ts';

const { applyPatch } = fastJsonPatch;

export type PatchType = 'json' | 'merge' | 'strategic' | 'apply';

export const PATCH_CONTENT_TYPES: Record<string, PatchType> = {
  'application/json-patch+json': 'json',
  'application/merge-patch+json': 'merge',
  'application/strategic-merge-patch+json': 'strategic',
  'application/apply-patch+yaml': 'apply',
  'application/apply-patch+cbor': 'apply',
};

export function patchTypeOf(contentType: string | undefined): Exclude<PatchType, 'apply'> {
  const base = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const t = PATCH_CONTENT_TYPES[base];
  if (!t) {
    throw unsupportedMediaType(
      `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`,
    );
  }
  if (t === 'apply') {
    throw unsupportedMediaType(
      'server-side apply (application/apply-patch+yaml) is not implemented by the Nemutator Kubernetes double; use client-side apply (kubectl apply without --server-side), or a JSON, merge or strategic merge patch',
    );
  }
  return t;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Applies a patch of the given type to a copy of `original`. */
export function applyPatchOfType(type: Exclude<PatchType, 'apply'>, original: Record<string, unknown>, patchBody: unknown): Record<string, unknown> {
  switch (type) {
    case 'json':
      return applyJsonPatch(original, patchBody);
    case 'merge':
      if (!isObject(patchBody)) throw badRequest('the body of the merge patch must be a JSON object');
      return mergePatch(structuredClone(original) as JsonObject, patchBody) as Record<string, unknown>;
    case 'strategic':
      if (!isObject(patchBody)) throw badRequest('the body of the strategic merge patch must be a JSON object');
      return strategicMergeMap(structuredClone(original) as JsonObject, patchBody) ?? {};
  }
}

export function applyJsonPatch(original: Record<string, unknown>, patchBody: unknown): Record<string, unknown> {
  if (!Array.isArray(patchBody)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  for (const op of patchBody) {
    if (!isObject(op) || typeof op['op'] !== 'string' || typeof op['path'] !== 'string') {
      throw badRequest(`invalid JSON Patch operation: ${JSON.stringify(op)}`);
    }
    if (!['add', 'remove', 'replace', 'move', 'copy', 'test'].includes(op['op'] as string)) {
      throw badRequest(`Unexpected kind: ${op['op'] as string}`);
    }
  }
  try {
    return applyPatch(structuredClone(original), patchBody as Operation[], true, true).newDocument as Record<string, unknown>;
  } catch (err) {
    // kube-apiserver: NewGenericServerResponse(422, …) with the library's message as cause.
    throw failure(422, 'Invalid', 'the server rejected our request due to an error in our request', {
      causes: [{ reason: 'UnexpectedServerResponse', message: jsonPatchMessage(err) }],
    });
  }
}

function jsonPatchMessage(err: unknown): string {
  const e = err as { name?: string; operation?: { path?: string; op?: string }; message?: string };
  const path = e.operation?.path ?? '';
  switch (e.name) {
    case 'TEST_OPERATION_FAILED':
      return `testing value ${path} failed: test failed`;
    case 'OPERATION_PATH_UNRESOLVABLE':
    case 'OPERATION_PATH_CANNOT_ADD':
      return `doc is missing path: "${path}": missing value`;
    default:
      return (e.message ?? String(err)).split('\n')[0] as string;
  }
}

/** RFC 7386. */
export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete result[k];
    else result[k] = mergePatch(result[k] ?? null, v);
  }
  return result;
}

// ---- strategic merge patch ---------------------------------------------------------------

/** patchMergeKey of list fields in the built-in types (from the Go struct tags). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  ownerReferences: 'uid',
  conditions: 'type',
  topologySpreadConstraints: 'topologyKey',
  resourceClaims: 'name',
  schedulingGates: 'name',
  webhooks: 'name',
  matchConditions: 'name',
  taints: 'key',
  addresses: 'type',
  resizePolicy: 'resourceName',
};

/** Lists of scalars with patchStrategy "merge" (union instead of replace). */
const PRIMITIVE_MERGE_LISTS = new Set(['finalizers']);

function mergeKeyFor(field: string, original: Json | undefined, patch: Json[]): string | undefined {
  if (field === 'ports') {
    // Container ports merge on containerPort, Service ports on port.
    const items = [...(Array.isArray(original) ? original : []), ...patch];
    return items.some((i) => isObject(i) && 'containerPort' in i) ? 'containerPort' : 'port';
  }
  return MERGE_KEYS[field];
}

function strategicMergeMap(original: JsonObject, patch: JsonObject): JsonObject | undefined {
  const directive = patch['$patch'];
  if (directive === 'delete') return undefined;
  if (directive === 'replace') {
    const replaced = structuredClone(patch);
    delete replaced['$patch'];
    return replaced;
  }
  if (directive !== undefined && directive !== 'merge') {
    throw badRequest(`Unknown patch type: ${String(directive)} in map: ${JSON.stringify(patch)}`);
  }
  const result = original;
  const orders: [string, Json[]][] = [];
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys') continue;
    if (key.startsWith('$setElementOrder/')) {
      if (!Array.isArray(value)) throw badRequest('invalid list format for $setElementOrder');
      orders.push([key.slice('$setElementOrder/'.length), value]);
      continue;
    }
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length);
      if (!Array.isArray(value)) throw badRequest('invalid list format for $deleteFromPrimitiveList');
      const current = result[field];
      if (Array.isArray(current)) result[field] = current.filter((v) => !value.some((d) => d === v));
      continue;
    }
    if (value === null) {
      delete result[key];
    } else if (isObject(value)) {
      const merged = strategicMergeMap(isObject(result[key]) ? (result[key] as JsonObject) : {}, value);
      if (merged === undefined) delete result[key];
      else result[key] = merged;
    } else if (Array.isArray(value)) {
      result[key] = strategicMergeList(key, result[key], value);
    } else {
      result[key] = value;
    }
  }
  for (const [field, order] of orders) {
    const list = result[field];
    if (Array.isArray(list)) result[field] = reorder(field, list, order);
  }
  const retain = patch['$retainKeys'];
  if (Array.isArray(retain)) {
    for (const k of Object.keys(result)) if (!retain.includes(k)) delete result[k];
  }
  return result;
}

function strategicMergeList(field: string, original: Json | undefined, patch: Json[]): Json[] {
  if (PRIMITIVE_MERGE_LISTS.has(field)) {
    const out = Array.isArray(original) ? [...original] : [];
    for (const v of patch) if (!out.some((o) => o === v)) out.push(v);
    return out;
  }
  const key = mergeKeyFor(field, original, patch);
  const replaceDirective = patch.some((i) => isObject(i) && i['$patch'] === 'replace');
  if (!key || replaceDirective) {
    return patch.filter((i) => !(isObject(i) && i['$patch'] === 'replace')).map((i) => (isObject(i) ? (strategicMergeMap({}, i) as Json) : i));
  }
  const result: Json[] = Array.isArray(original) ? [...original] : [];
  for (const item of patch) {
    if (!isObject(item)) throw badRequest(`unable to find api field in struct for the list item ${JSON.stringify(item)} of ${field}`);
    const id = item[key];
    if (id === undefined) throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key}`);
    const idx = result.findIndex((o) => isObject(o) && o[key] === id);
    if (item['$patch'] === 'delete') {
      if (idx >= 0) result.splice(idx, 1);
      continue;
    }
    if (idx >= 0) {
      const merged = strategicMergeMap(result[idx] as JsonObject, item);
      if (merged === undefined) result.splice(idx, 1);
      else result[idx] = merged;
    } else {
      const fresh = strategicMergeMap({}, item);
      if (fresh !== undefined) result.push(fresh);
    }
  }
  return result;
}

function reorder(field: string, list: Json[], order: Json[]): Json[] {
  const key = PRIMITIVE_MERGE_LISTS.has(field) ? undefined : mergeKeyFor(field, list, []);
  const id = (v: Json): Json => (key && isObject(v) ? (v[key] ?? null) : v);
  const ordered: Json[] = [];
  for (const o of order) {
    const want = id(o);
    const found = list.find((v) => id(v) === want);
    if (found !== undefined) ordered.push(found);
  }
  for (const v of list) if (!ordered.includes(v)) ordered.push(v);
  return ordered;
}
