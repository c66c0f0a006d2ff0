/**
 * What a container is handed: its declared env variables and the pod's declared files, each
 * with the value, the KV version and the path it came from. The GET answer and a watch line
 * are built by the same function.
 */
import { secretsError } from './errors.ts';
import type { SecretRef } from './references.ts';

export type Handed = Record<string, { value: string; version: number; path: string }>;

export interface SecretsDocument {
  env: Handed;
  files: Handed;
  rotateSignal?: string;
}

export interface WatchLine {
  path: string;
  version: number;
  env: Handed;
  files: Handed;
}

/** One KV version of a path as read from Vault. */
export interface KvVersion {
  ref: Pick<SecretRef, 'mount' | 'path' | 'id'>;
  data: Record<string, string>;
  version: number;
}

/**
 * The declared names whose path has a version in `versions`. A key missing from Vault's data is
 * an error for a read (`missingKey: 'refuse'`: the caller asked for it) and left out of a watch
 * line (`'omit'`: the other names of the line are still news).
 */
export function handOut(
  declared: { env: Record<string, SecretRef>; files: Record<string, SecretRef> },
  versions: ReadonlyMap<string, KvVersion>,
  missingKey: 'refuse' | 'omit',
): { env: Handed; files: Handed } {
  const pick = (refs: Record<string, SecretRef>): Handed => {
    const out: Handed = {};
    for (const [name, r] of Object.entries(refs)) {
      const v = versions.get(r.id);
      if (!v) continue;
      const value = v.data[r.key];
      if (value === undefined) {
        if (missingKey === 'omit') continue;
        throw secretsError('NOT_FOUND', `Vault's secret ${r.id} (version ${v.version}) has no key "${r.key}"`);
      }
      out[name] = { value, version: v.version, path: r.id };
    }
    return out;
  };
  return { env: pick(declared.env), files: pick(declared.files) };
}
