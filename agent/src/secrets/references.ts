/**
 * What a pod may read: the `nemutator.io/secrets` annotation the webhook writes (references
 * only, never values) and the `vault:<mount>/<path>#<key>` references inside it.
 */
export const SECRETS_ANNOTATION = 'nemutator.io/secrets';
export const AUDIENCE_ANNOTATION = 'nemutator.io/vault-audience';
export const ROTATE_SIGNAL_ANNOTATION = 'nemutator.io/rotate-signal';

export interface SecretRef {
  /** KV v2 mount, e.g. `secret`. */
  mount: string;
  /** Path below the mount, e.g. `app/db`. */
  path: string;
  key: string;
  /** `secret/app/db`: how paths are named on the socket, in acks and in status. */
  id: string;
}

export interface PodSecretsSpec {
  role?: string;
  containers: Record<string, { env: Record<string, SecretRef> }>;
  files: Record<string, SecretRef>;
  rotateSignal?: string;
}

const REF = /^vault:([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.\-/]+)#([^#\s]+)$/;

export function parseRef(text: string): SecretRef | undefined {
  const m = REF.exec(text);
  if (!m) return undefined;
  const path = m[2]!.replace(/\/+$/, '');
  if (path === '' || path.split('/').some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return { mount: m[1]!, path, key: m[3]!, id: `${m[1]}/${path}` };
}

/** `vault:secret/app/db#password`, `secret/app/db#password` or `secret/app/db` → `secret/app/db`. */
export function normalizePathId(text: string): string {
  return text
    .replace(/^vault:/, '')
    .replace(/#.*$/, '')
    .replace(/\/+$/, '');
}

const parsed = new Map<string, PodSecretsSpec | undefined>();

/** The annotation parsed; undefined when absent or malformed (a malformed one grants nothing). Cached by its text. */
export function parseSecretsAnnotation(annotations: Record<string, string> | undefined): PodSecretsSpec | undefined {
  const raw = annotations?.[SECRETS_ANNOTATION];
  if (!raw) return undefined;
  const key = `${raw}\0${annotations?.[ROTATE_SIGNAL_ANNOTATION] ?? ''}`;
  if (parsed.has(key)) return parsed.get(key);
  const spec = parseUncached(raw, annotations);
  if (parsed.size >= 10_000) parsed.clear();
  parsed.set(key, spec);
  return spec;
}

function parseUncached(raw: string, annotations: Record<string, string> | undefined): PodSecretsSpec | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const d = doc as { v?: unknown; role?: unknown; containers?: unknown; files?: unknown; rotateSignal?: unknown };
  if (d.v !== 1) return undefined;
  const spec: PodSecretsSpec = { containers: {}, files: {} };
  if (typeof d.role === 'string' && d.role) spec.role = d.role;
  const signal = typeof d.rotateSignal === 'string' ? d.rotateSignal : annotations?.[ROTATE_SIGNAL_ANNOTATION];
  if (signal && /^SIG[A-Z0-9]+$/.test(signal)) spec.rotateSignal = signal;
  if (d.containers && typeof d.containers === 'object') {
    for (const [name, c] of Object.entries(d.containers as Record<string, { env?: Record<string, unknown> }>)) {
      const env: Record<string, SecretRef> = {};
      for (const [v, ref] of Object.entries(c?.env ?? {})) {
        const r = typeof ref === 'string' ? parseRef(ref) : undefined;
        if (r && /^[A-Za-z_][A-Za-z0-9_]*$/.test(v)) env[v] = r;
      }
      spec.containers[name] = { env };
    }
  }
  if (d.files && typeof d.files === 'object') {
    for (const [name, ref] of Object.entries(d.files as Record<string, unknown>)) {
      const r = typeof ref === 'string' ? parseRef(ref) : undefined;
      // A file name is one path segment: files are written into one directory.
      if (r && /^[A-Za-z0-9_.-]+$/.test(name) && name !== '.' && name !== '..') spec.files[name] = r;
    }
  }
  return spec;
}

/** The references one container may read: its own env set and the pod's files. */
export function declaredFor(spec: PodSecretsSpec, container: string): { env: Record<string, SecretRef>; files: Record<string, SecretRef> } {
  return { env: spec.containers[container]?.env ?? {}, files: spec.files };
}

export function declaredPathIds(spec: PodSecretsSpec, container: string): Set<string> {
  const d = declaredFor(spec, container);
  return new Set([...Object.values(d.env), ...Object.values(d.files)].map((r) => r.id));
}
