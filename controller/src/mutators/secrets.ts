/**
 * `secrets`: a pod that names Vault references gets the node agent's socket, a launcher and
 * a projected token instead of values — no secret is ever written to the pod spec (etcd).
 *
 * Inputs (references only, `vault:<mount>/<path>#<key>`, KV v2):
 *   - container env values `vault:…` (also after the env mutator resolved `nemu_env_<hash>`);
 *   - pod annotations `nemutator.io/secret-file.<name>: vault:…` (rendered as /nemutator/secrets/<name>);
 *   - `nemutator.io/vault-role` (default: the service account), `nemutator.io/vault-audience`,
 *     `nemutator.io/rotate-signal`, `nemutator.io/entrypoint[.<container>]` (the argv the image
 *     would run, for containers without `command`).
 *
 * Output: what the pod may read, recorded in `nemutator.io/secrets` (the agent's contract), the
 * three volumes, the `nemutator-init` initContainer, and each referencing container's argv
 * wrapped in `/nemutator/bin/nemu-exec --`. The record is the source of truth on a re-run (the
 * `vault:` env entries are gone by then), which makes the mutator idempotent.
 */
import { isDeepStrictEqual } from 'node:util';

import { isRecord, type KubeObject, type MutationContext, type Mutator, NEMU } from './types.ts';
import { type Container, editAt, podSpecOf, templateOf } from './workload.ts';

export const SECRETS_ANNOTATION = 'nemutator.io/secrets';
export const SECRET_FILE_PREFIX = 'nemutator.io/secret-file.';
export const VAULT_ROLE_ANNOTATION = 'nemutator.io/vault-role';
export const VAULT_AUDIENCE_ANNOTATION = 'nemutator.io/vault-audience';
export const ROTATE_SIGNAL_ANNOTATION = 'nemutator.io/rotate-signal';
export const ENTRYPOINT_ANNOTATION = 'nemutator.io/entrypoint';

export const INIT_CONTAINER = 'nemutator-init';
export const LAUNCHER = '/nemutator/bin/nemu-exec';
export const VOLUMES = { socket: 'nemutator-socket', bin: 'nemutator-bin', token: 'nemutator-token' } as const;
export const PATHS = {
  socketDir: '/nemutator/socket',
  socket: '/nemutator/socket/agent.sock',
  bin: '/nemutator/bin',
  secrets: '/nemutator/secrets',
  tokenDir: '/nemutator/token',
  token: '/nemutator/token/token',
} as const;
export const TOKEN_EXPIRATION_SECONDS = 3600;
/** Signals a workload may ask for on rotation (the launcher forwards them to its child). */
export const ROTATE_SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGWINCH'] as const;

/** `vault:<mount>/<path>#<key>`: a KV v2 mount, a secret path, a key of that secret. */
const REFERENCE = /^vault:([A-Za-z0-9_.-]+)\/([A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*)#([A-Za-z0-9_.-]+)$/;
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

export interface VaultReference {
  mount: string;
  path: string;
  key: string;
}

export function parseReference(text: string): VaultReference | undefined {
  const m = REFERENCE.exec(text);
  return m ? { mount: m[1]!, path: m[2]!, key: m[3]! } : undefined;
}

/** Looks like a reference (it may still be malformed: `parseReference` decides). */
export function isVaultReference(value: unknown): boolean {
  return typeof value === 'string' && value.startsWith('vault:');
}

/** The record in `nemutator.io/secrets`: references only, never values. */
export interface SecretsRecord {
  v: 1;
  role: string;
  containers: Record<string, { env: Record<string, string> }>;
  files: Record<string, string>;
  rotateSignal?: string;
}

/** Reads the record of a pod's annotations; undefined when absent or not a v1 record. */
export function parseSecretsRecord(text: unknown): SecretsRecord | undefined {
  if (typeof text !== 'string') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(v) || v.v !== 1 || typeof v.role !== 'string' || !isRecord(v.containers) || !isRecord(v.files)) return undefined;
  const containers: SecretsRecord['containers'] = {};
  for (const [name, c] of Object.entries(v.containers)) {
    if (!isRecord(c) || !isRecord(c.env)) return undefined;
    const env: Record<string, string> = {};
    for (const [k, ref] of Object.entries(c.env)) if (typeof ref === 'string' && parseReference(ref)) env[k] = ref;
    containers[name] = { env };
  }
  const files: Record<string, string> = {};
  for (const [k, ref] of Object.entries(v.files)) if (typeof ref === 'string' && parseReference(ref)) files[k] = ref;
  return { v: 1, role: v.role, containers, files, ...(typeof v.rotateSignal === 'string' ? { rotateSignal: v.rotateSignal } : {}) };
}

export interface SecretsOptions {
  /** Image of the initContainer that holds the launcher (`/nemu-exec`). */
  initImage: string;
  /** Audience of the projected token the agent logs in to Vault with, unless the pod names one. */
  vaultAudience: string;
  /** Host directory of the agent's socket (the `hostPath` volume). */
  socketHostDir: string;
  /**
   * How the socket directory reaches the pod: an inline `csi` volume of the node plugin
   * (allowed by every Pod Security level) or a `hostPath` (refused by baseline and restricted).
   */
  secretsSocketVolume?: 'csi' | 'hostPath';
  /** Requests and limits of nemutator-init (quantities). */
  initCpuRequest?: string;
  initMemoryRequest?: string;
  initCpuLimit?: string;
  initMemoryLimit?: string;
}

export const CSI_DRIVER = 'csi.nemutator.io';
/** distroless' `nonroot`: the init image's own USER. */
export const INIT_UID = 65532;

export const SECRETS_DEFAULTS: SecretsOptions = {
  initImage: 'ghcr.io/nemutator/init:0.1.0',
  vaultAudience: 'vault',
  socketHostDir: '/run/nemutator',
  secretsSocketVolume: 'csi',
  initCpuRequest: '10m',
  initMemoryRequest: '16Mi',
  initCpuLimit: '100m',
  initMemoryLimit: '64Mi',
};

/**
 * What nemutator-init runs with: everything Pod Security's restricted level asks for. It only
 * copies a file into the pod's emptyDir and writes rendered files there (mode 0444, so the
 * application reads them whatever its own user is); the launcher then runs in the application
 * container as the application's user.
 */
export const INIT_SECURITY_CONTEXT = {
  runAsNonRoot: true,
  runAsUser: INIT_UID,
  runAsGroup: INIT_UID,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
} as const;

/** The socket volume's source as options choose it. */
export function socketVolumeSource(options: SecretsOptions): Record<string, unknown> {
  return (options.secretsSocketVolume ?? 'csi') === 'csi'
    ? { csi: { driver: CSI_DRIVER, readOnly: true } }
    : { hostPath: { path: options.socketHostDir, type: 'DirectoryOrCreate' } };
}

function initResources(options: SecretsOptions): Record<string, Record<string, string>> {
  const o = { ...SECRETS_DEFAULTS, ...options };
  return { requests: { cpu: o.initCpuRequest!, memory: o.initMemoryRequest! }, limits: { cpu: o.initCpuLimit!, memory: o.initMemoryLimit! } };
}

type Env = Record<string, unknown>;
type Mount = { name: string; mountPath: string; readOnly?: boolean; subPath?: string };

function launcherEnv(container: string): Array<{ name: string; value: string }> {
  return [
    { name: 'NEMUTATOR_SOCKET', value: PATHS.socket },
    { name: 'NEMUTATOR_TOKEN_FILE', value: PATHS.token },
    { name: 'NEMUTATOR_CONTAINER', value: container },
    { name: 'NEMUTATOR_SECRETS_DIR', value: PATHS.secrets },
  ];
}

const LAUNCHER_MOUNTS: Mount[] = [
  { name: VOLUMES.socket, mountPath: PATHS.socketDir, readOnly: true },
  { name: VOLUMES.bin, mountPath: PATHS.bin, readOnly: true },
  // writable: the launcher replaces rendered files on rotation
  { name: VOLUMES.bin, mountPath: PATHS.secrets, subPath: 'secrets' },
  { name: VOLUMES.token, mountPath: PATHS.tokenDir, readOnly: true },
];
const INIT_MOUNTS: Mount[] = [
  { name: VOLUMES.socket, mountPath: PATHS.socketDir, readOnly: true },
  { name: VOLUMES.bin, mountPath: PATHS.bin },
  { name: VOLUMES.bin, mountPath: PATHS.secrets, subPath: 'secrets' },
  { name: VOLUMES.token, mountPath: PATHS.tokenDir, readOnly: true },
];
const FILES_MOUNT: Mount = { name: VOLUMES.bin, mountPath: PATHS.secrets, subPath: 'secrets', readOnly: true };

export const INIT_COMMAND = ['/nemu-exec', 'init', '--bin', PATHS.bin, '--render'];

function isWrapped(c: Container): boolean {
  return Array.isArray(c.command) && c.command[0] === LAUNCHER && c.command[1] === '--';
}

function strings(v: unknown): string[] | undefined {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : undefined;
}

/** `nemutator.io/entrypoint`: a JSON array of strings, or a plain string split on whitespace (no shell quoting). */
export function parseEntrypoint(text: unknown): string[] | undefined {
  if (typeof text !== 'string' || text.trim() === '') return undefined;
  const t = text.trim();
  if (t.startsWith('[')) {
    try {
      const argv = strings(JSON.parse(t));
      return argv && argv.length > 0 ? argv : undefined;
    } catch {
      return undefined;
    }
  }
  return t.split(/\s+/);
}

export function normalizeSignal(text: string): string | undefined {
  const s = text.trim().toUpperCase();
  const name = s.startsWith('SIG') ? s : `SIG${s}`;
  return (ROTATE_SIGNALS as readonly string[]).includes(name) ? name : undefined;
}

function podAnnotations(object: KubeObject, kind: MutationContext['kind']): Record<string, unknown> {
  const meta = kind === 'Pod' ? object.metadata : templateOf(object)?.metadata;
  return isRecord(meta) && isRecord(meta.annotations) ? meta.annotations : {};
}

/** The containers the launcher may wrap: init containers (but ours) and containers, in spec order. */
function workloadContainers(spec: Record<string, unknown>): Container[] {
  const out: Container[] = [];
  for (const field of ['initContainers', 'containers']) {
    const list = spec[field];
    if (Array.isArray(list)) for (const c of list) if (isRecord(c) && c.name !== INIT_CONTAINER) out.push(c as Container);
  }
  return out;
}

/** The value an env entry stands for: its own, or (when `env` was skipped) the dictionary's for a nemu_ placeholder. */
function referenceOf(e: Env, dictionary: ReadonlyMap<string, string>): string | undefined {
  const v = e.value;
  if (typeof v !== 'string') return undefined;
  if (isVaultReference(v)) return v;
  if (v.startsWith(NEMU)) {
    const real = dictionary.get(v);
    if (real !== undefined && isVaultReference(real)) return real;
  }
  return undefined;
}

function ensureList<T>(holder: Record<string, unknown>, field: string): T[] {
  if (!Array.isArray(holder[field])) holder[field] = [];
  return holder[field] as T[];
}

export function createSecretsMutator(options: SecretsOptions = SECRETS_DEFAULTS): Mutator {
  return {
    verb: 'secrets',
    keys(object, ctx) {
      // nemu_ placeholders whose value may be a reference: the env mutator asks for the same
      // keys, this mutator needs them only when `env` is skipped.
      const keys = new Set<string>();
      const spec = podSpecOf(object, ctx.kind);
      if (!spec) return keys;
      for (const c of workloadContainers(spec)) {
        if (!Array.isArray(c.env)) continue;
        for (const e of c.env) if (isRecord(e) && typeof e.value === 'string' && e.value.startsWith(NEMU)) keys.add(e.value);
      }
      return keys;
    },
    mutate(object, ctx) {
      const spec = podSpecOf(object, ctx.kind);
      if (!spec) return object;
      const annotations = podAnnotations(object, ctx.kind);
      const hasFileAnnotation = Object.keys(annotations).some((k) => k.startsWith(SECRET_FILE_PREFIX));
      const hasEnvReference = workloadContainers(spec).some(
        (c) => Array.isArray(c.env) && c.env.some((e) => isRecord(e) && referenceOf(e, ctx.dictionary) !== undefined),
      );
      if (!hasFileAnnotation && !hasEnvReference && annotations[SECRETS_ANNOTATION] === undefined) return object;
      // copies the pod spec and the pod's annotations only; the rest is shared with the input
      const pod = ctx.kind === 'Pod' ? [] : ['spec', 'template'];
      return editAt(
        object,
        [
          [...pod, 'spec'],
          [...pod, 'metadata', 'annotations'],
        ],
        (draft) => apply(draft, ctx, options),
      );
    },
  };
}

/** The pod's annotations in the draft (created when absent); undefined when there is no metadata. */
function draftAnnotations(draft: KubeObject, kind: MutationContext['kind']): Record<string, unknown> | undefined {
  const meta = kind === 'Pod' ? draft.metadata : templateOf(draft)?.metadata;
  if (!isRecord(meta)) return undefined;
  if (!isRecord(meta.annotations)) meta.annotations = {};
  return meta.annotations as Record<string, unknown>;
}

/** Brings the pod spec in line with its references; says whether anything changed. */
function apply(draft: KubeObject, ctx: MutationContext, options: SecretsOptions): boolean {
  const spec = podSpecOf(draft, ctx.kind)!;
  const annotations = draftAnnotations(draft, ctx.kind);
  if (!annotations) return false;
  const previous = parseSecretsRecord(annotations[SECRETS_ANNOTATION]);
  if (annotations[SECRETS_ANNOTATION] !== undefined && !previous) {
    ctx.warn(`annotation ${SECRETS_ANNOTATION} is not a v1 record; it is rebuilt from the pod's vault: references`);
  }
  const workloads = workloadContainers(spec);
  const { containers, changed: envChanged } = takeEnvReferences(workloads, previous, ctx);
  const files = fileReferences(annotations, ctx);
  if (Object.keys(containers).length === 0 && Object.keys(files).length === 0) {
    if (annotations[SECRETS_ANNOTATION] === undefined) return envChanged;
    delete annotations[SECRETS_ANNOTATION];
    return true;
  }
  let changed = writeRecord(annotations, secretsRecord(spec, annotations, containers, files, ctx)) || envChanged;
  const audienceText = annotations[VAULT_AUDIENCE_ANNOTATION];
  const audience = typeof audienceText === 'string' && audienceText.trim() !== '' ? audienceText.trim() : options.vaultAudience;
  if (ensureVolumes(spec, audience, options)) changed = true;
  if (ensureInitContainer(spec, options)) changed = true;
  for (const c of workloads) if (wireContainer(c, { containers, files, annotations }, ctx)) changed = true;
  return changed;
}

/**
 * What each container may read: the record's references, then the spec's (newer) ones, which
 * leave the spec (a reference is served by the agent, never kept as an env value).
 */
function takeEnvReferences(
  workloads: Container[],
  previous: SecretsRecord | undefined,
  ctx: MutationContext,
): { containers: SecretsRecord['containers']; changed: boolean } {
  const containers: SecretsRecord['containers'] = {};
  let changed = false;
  for (const c of workloads) {
    const name = typeof c.name === 'string' ? c.name : '';
    const env: Record<string, string> = { ...(previous?.containers[name]?.env ?? {}) };
    if (takeContainerEnv(c, name, env, ctx)) changed = true;
    if (Object.keys(env).length > 0) containers[name] = { env };
  }
  return { containers, changed };
}

/** Moves one container's `vault:` env entries into `env` (malformed ones are dropped with a warning). */
function takeContainerEnv(c: Container, name: string, env: Record<string, string>, ctx: MutationContext): boolean {
  if (!Array.isArray(c.env)) return false;
  const kept: Array<Record<string, unknown>> = [];
  let removed = false;
  for (const e of c.env) {
    const ref = isRecord(e) ? referenceOf(e, ctx.dictionary) : undefined;
    if (ref === undefined || typeof e.name !== 'string') {
      kept.push(e);
      continue;
    }
    if (!parseReference(ref)) {
      // the text is not echoed: a malformed reference may be a pasted value
      ctx.warn(`env ${e.name} of container ${name} is not a reference of the form vault:<mount>/<path>#<key>; removed from the spec, not served`);
    } else {
      env[e.name] = ref;
    }
    removed = true;
  }
  if (!removed) return false;
  if (kept.length > 0) c.env = kept;
  else delete c.env;
  return true;
}

/** The files the pod asks for (`nemutator.io/secret-file.<name>`), by name. */
function fileReferences(annotations: Record<string, unknown>, ctx: MutationContext): Record<string, string> {
  const files: Record<string, string> = {};
  for (const [k, v] of Object.entries(annotations)) {
    if (!k.startsWith(SECRET_FILE_PREFIX)) continue;
    const name = k.slice(SECRET_FILE_PREFIX.length);
    if (!FILE_NAME.test(name)) ctx.warn(`annotation ${k}: "${name}" is not a file name (letters, digits, . _ -); ignored`);
    else if (typeof v !== 'string' || !parseReference(v)) ctx.warn(`annotation ${k} is not a reference of the form vault:<mount>/<path>#<key>; ignored`);
    else files[name] = v;
  }
  return files;
}

/** The record of what the pod may read, with its Vault role and rotation signal. */
function secretsRecord(
  spec: Record<string, unknown>,
  annotations: Record<string, unknown>,
  containers: SecretsRecord['containers'],
  files: Record<string, string>,
  ctx: MutationContext,
): SecretsRecord {
  let rotateSignal: string | undefined;
  const signalText = annotations[ROTATE_SIGNAL_ANNOTATION];
  if (typeof signalText === 'string' && signalText.trim() !== '') {
    rotateSignal = normalizeSignal(signalText);
    if (!rotateSignal)
      ctx.warn(`annotation ${ROTATE_SIGNAL_ANNOTATION}: "${signalText}" is not one of ${ROTATE_SIGNALS.join(', ')}; no signal is sent on rotation`);
  }
  const serviceAccount =
    (typeof spec.serviceAccountName === 'string' && spec.serviceAccountName) || (typeof spec.serviceAccount === 'string' && spec.serviceAccount) || 'default';
  const roleText = annotations[VAULT_ROLE_ANNOTATION];
  const role = typeof roleText === 'string' && roleText.trim() !== '' ? roleText.trim() : serviceAccount;
  return { v: 1, role, containers, files, ...(rotateSignal ? { rotateSignal } : {}) };
}

function writeRecord(annotations: Record<string, unknown>, record: SecretsRecord): boolean {
  const recordText = JSON.stringify(record);
  if (annotations[SECRETS_ANNOTATION] === recordText) return false;
  annotations[SECRETS_ANNOTATION] = recordText;
  return true;
}

interface PodReferences {
  containers: SecretsRecord['containers'];
  files: Record<string, string>;
  annotations: Record<string, unknown>;
}

/**
 * One container: with env references, its argv wrapped in the launcher (plus the launcher's
 * mounts and env); with files only, or without a known entrypoint, the secrets directory.
 */
function wireContainer(c: Container, pod: PodReferences, ctx: MutationContext): boolean {
  const name = typeof c.name === 'string' ? c.name : '';
  const filesOnly = () => Object.keys(pod.files).length > 0 && ensureMounts(c, [FILES_MOUNT]);
  const refs = pod.containers[name];
  if (!refs) return filesOnly();
  let changed = false;
  if (!isWrapped(c)) {
    const own = strings(c.command);
    const entrypoint =
      own && own.length > 0 ? own : parseEntrypoint(pod.annotations[`${ENTRYPOINT_ANNOTATION}.${name}`] ?? pod.annotations[ENTRYPOINT_ANNOTATION]);
    if (!entrypoint) {
      const vars = Object.keys(refs.env).join(', ');
      ctx.warn(
        `container ${name} has no command and the pod has no ${ENTRYPOINT_ANNOTATION} annotation: the launcher cannot know the image's entrypoint, so its vault: env (${vars}) is not injected and it gets the secret files only; set command, or ${ENTRYPOINT_ANNOTATION} to the argv the image runs`,
      );
      return filesOnly();
    }
    c.command = [LAUNCHER, '--', ...entrypoint, ...(strings(c.args) ?? [])];
    delete c.args;
    changed = true;
  }
  if (ensureMounts(c, LAUNCHER_MOUNTS)) changed = true;
  if (ensureEnv(c, launcherEnv(name))) changed = true;
  return changed;
}

function ensureVolumes(spec: Record<string, unknown>, audience: string, options: SecretsOptions): boolean {
  const volumes = ensureList<Record<string, unknown>>(spec, 'volumes');
  let changed = false;
  const byName = (n: string) => volumes.find((v) => isRecord(v) && v.name === n);
  const socket = byName(VOLUMES.socket);
  const source = socketVolumeSource(options);
  if (!socket) {
    volumes.push({ name: VOLUMES.socket, ...source });
    changed = true;
  } else if (!sameSocketSource(socket, source)) {
    // the other kind of source (configuration changed) goes: a volume has exactly one
    for (const k of Object.keys(socket)) if (k !== 'name') delete socket[k];
    Object.assign(socket, source);
    changed = true;
  }
  if (!byName(VOLUMES.bin)) {
    volumes.push({ name: VOLUMES.bin, emptyDir: { medium: 'Memory' } });
    changed = true;
  }
  const token = byName(VOLUMES.token);
  const tokenSource = { serviceAccountToken: { audience, expirationSeconds: TOKEN_EXPIRATION_SECONDS, path: 'token' } };
  if (!token) {
    volumes.push({ name: VOLUMES.token, projected: { sources: [tokenSource] } });
    changed = true;
  } else {
    // fields the API server defaults (defaultMode) are kept; only the audience is ours to change
    const sat =
      isRecord(token.projected) && Array.isArray(token.projected.sources)
        ? token.projected.sources.find((s) => isRecord(s) && isRecord(s.serviceAccountToken))?.serviceAccountToken
        : undefined;
    if (!isRecord(sat)) {
      token.projected = { sources: [tokenSource] };
      changed = true;
    } else if (sat.audience !== audience) {
      sat.audience = audience;
      changed = true;
    }
  }
  return changed;
}

/** The source the API server stores for ours: hostPath keeps its path and type, csi its driver and readOnly (volumeAttributes may be defaulted to nothing). */
function sameSocketSource(volume: Record<string, unknown>, source: Record<string, unknown>): boolean {
  const keys = Object.keys(volume).filter((k) => k !== 'name');
  const [kind] = Object.keys(source) as [string];
  if (keys.length !== 1 || keys[0] !== kind || !isRecord(volume[kind])) return false;
  const have = volume[kind];
  const want = source[kind] as Record<string, unknown>;
  return Object.entries(want).every(([k, v]) => have[k] === v);
}

/** Sets `field` of the init container to `value` unless it already holds exactly that. */
function ensureField(init: Record<string, unknown>, field: string, value: unknown): boolean {
  // key order is the API server's (Go field order) once stored: compared as values
  if (isDeepStrictEqual(init[field], value)) return false;
  init[field] = structuredClone(value);
  return true;
}

function ensureInitContainer(spec: Record<string, unknown>, options: SecretsOptions): boolean {
  const inits = ensureList<Record<string, unknown>>(spec, 'initContainers');
  let init = inits.find((c) => isRecord(c) && c.name === INIT_CONTAINER);
  let changed = false;
  if (!init) {
    init = { name: INIT_CONTAINER, image: options.initImage, command: [...INIT_COMMAND] };
    // first: later init containers may use the launcher too
    inits.unshift(init);
    changed = true;
  }
  // An existing init container keeps its image: the image mutator may enforce its tag
  // (nemu_image_init), and the two must not take turns changing it.
  if (typeof init.image !== 'string' || init.image === '') {
    init.image = options.initImage;
    changed = true;
  }
  if (JSON.stringify(init.command) !== JSON.stringify(INIT_COMMAND)) {
    init.command = [...INIT_COMMAND];
    changed = true;
  }
  if (init.args !== undefined) {
    delete init.args;
    changed = true;
  }
  if (ensureMounts(init as Container, INIT_MOUNTS)) changed = true;
  if (ensureEnv(init as Container, launcherEnv(INIT_CONTAINER))) changed = true;
  if (ensureField(init, 'securityContext', INIT_SECURITY_CONTEXT)) changed = true;
  if (ensureField(init, 'resources', initResources(options))) changed = true;
  return changed;
}

/** Adds each mount whose path is not mounted yet (a person's own mount at that path wins). */
function ensureMounts(c: Container, mounts: Mount[]): boolean {
  const list = ensureList<Record<string, unknown>>(c, 'volumeMounts');
  let changed = false;
  for (const m of mounts) {
    if (list.some((x) => isRecord(x) && x.mountPath === m.mountPath)) continue;
    list.push({ ...m });
    changed = true;
  }
  if (list.length === 0) delete c.volumeMounts;
  return changed;
}

function ensureEnv(c: Container, vars: Array<{ name: string; value: string }>): boolean {
  const env = ensureList<Record<string, unknown>>(c, 'env');
  let changed = false;
  for (const v of vars) {
    const have = env.find((e) => isRecord(e) && e.name === v.name);
    if (!have) {
      env.push({ ...v });
      changed = true;
    } else if (have.value !== v.value || have.valueFrom !== undefined) {
      delete have.valueFrom;
      have.value = v.value;
      changed = true;
    }
  }
  return changed;
}

export const secretsMutator: Mutator = createSecretsMutator();

/** The chain with the secrets mutator built from configuration (image, audience, socket directory). */
export function withSecretsOptions(chain: readonly Mutator[], options: SecretsOptions): Mutator[] {
  return chain.map((m) => (m.verb === 'secrets' ? createSecretsMutator(options) : m));
}
