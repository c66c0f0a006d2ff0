/**
 * Patches are computed in one place, by diffing: forward = original → mutated (what the
 * apiserver applies), reverse = mutated → original (what a rollback applies). The forward
 * patch is applied locally before it is sent: the apiserver rejects a patch that does not
 * apply, and a wrong patch must never reach it.
 */
import fjp from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { KubeObject } from '../mutators/types.ts';
import { jsonClone } from '../mutators/workload.ts';

const { compare, applyPatch } = fjp;

export interface Patches {
  forward: Operation[];
  reverse: Operation[];
}

export function diff(original: KubeObject, mutated: KubeObject): Patches {
  return { forward: compare(original, mutated), reverse: compare(mutated, original) };
}

/** Whether applying `patch` to `from` yields `to` (on a copy). */
export function applies(from: KubeObject, patch: readonly Operation[], to: KubeObject): boolean {
  try {
    // On copies of both: an applied `add` inserts its value into the document by reference.
    const result = applyPatch(jsonClone(from), jsonClone(patch as Operation[]), false, true).newDocument;
    return deepEqual(result, to);
  } catch {
    return false;
  }
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => deepEqual(x, bb[i]));
  }
  const ak = Object.keys(a);
  const bo = b as Record<string, unknown>;
  if (ak.length !== Object.keys(bo).length) return false;
  return ak.every((k) => Object.hasOwn(bo, k) && deepEqual((a as Record<string, unknown>)[k], bo[k]));
}

/** JSON pointer escaping (RFC 6901): label keys hold `/` and sometimes `~`. */
export function pointer(...segments: string[]): string {
  return segments.map((s) => '/' + s.replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}
