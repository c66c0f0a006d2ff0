/**
 * Secrets in local mode: what a cluster gives the agent's secrets socket, made on this machine.
 * - values: the controller's embedded secret store (`nemutator secrets put`), or Vault read
 *   with the user's token when VAULT_ADDR is set;
 * - pods: `nemutator run` registers a "pod" here (name, uid, one container, its `vault:`
 *   references as the webhook's `nemutator.io/secrets` annotation would say them) and runs
 *   the program in a cgroup shaped like that pod's container, so the agent identifies it by
 *   the kernel exactly as on a node;
 * - tokens: each local pod gets a token signed by a key local mode holds in memory, with the
 *   claims of a projected service-account token (pod name and uid, node), so the token half
 *   of the caller check runs as in a cluster.
 * A `put` of a new version is a rotation: it is pushed to every process holding the path.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, SignJWT } from 'jose';

import { secretsError } from '#agent/secrets/errors.js';
import { loadPeercred } from '#agent/secrets/peercred.js';
import { parseRef, SECRETS_ANNOTATION } from '#agent/secrets/references.js';
import { type SecretSource, vaultTokenSource } from '#agent/secrets/source.js';
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { LocalPodTicket } from '#common/local-pods.js';
import type { EmbeddedSecretStore } from '#controller/secrets/embedded.js';
import type { Router } from '#controller/server/router.js';

import { buildPeercred } from '../../agent/native/peercred/build.mjs';

/** The namespace local pods live in, as `nemutator secrets status` shows it. */
export const LOCAL_NAMESPACE = 'local';
const SERVICE_ACCOUNT = 'default';
const ISSUER = 'https://nemutator.local';
const TOKEN_TTL_SECONDS = 24 * 3600;
const SIGNALS = ['SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGWINCH', 'SIGCONT'];

/**
 * The secrets socket identifies callers with the peercred addon; a fresh clone has not built
 * it, so local mode builds it (node-gyp and the Node headers, a few seconds, once). Undefined
 * when it is there; else why the socket stays off (local mode runs without it).
 */
export function ensurePeercred(): string | undefined {
  try {
    loadPeercred();
    return undefined;
  } catch {
    try {
      buildPeercred();
      loadPeercred();
      return undefined;
    } catch (e) {
      return `${(e as Error).message.split('\n')[0]} — then restart`;
    }
  }
}

/** The embedded store seen through the agent's SecretSource seam: one session per pod, no login. */
export function embeddedSource(store: EmbeddedSecretStore): SecretSource {
  return {
    kind: 'embedded',
    session: () => ({
      async readKv(ref) {
        const e = await store.read(ref.id);
        if (!e) throw secretsError('NOT_FOUND', `the embedded store has no ${ref.id}; write it with: nemutator secrets put ${ref.id} <key>=-`);
        return { data: e.data, version: e.version };
      },
      async currentVersion(ref) {
        return (await store.read(ref.id))?.version;
      },
      updateToken() {},
      async revoke() {},
    }),
  };
}

/** Vault at `addr`, read with VAULT_TOKEN (or ~/.vault-token, as the vault CLI does). */
export function localVaultSource(addr: string, env: NodeJS.ProcessEnv, timeoutMs: number): SecretSource {
  let token = env.VAULT_TOKEN?.trim();
  const file = join(homedir(), '.vault-token');
  if (!token && existsSync(file)) token = readFileSync(file, 'utf8').trim();
  if (!token) {
    throw new NemuError(
      ErrorCodes.CONFIG,
      `VAULT_ADDR is set (${addr}) but no Vault token: set VAULT_TOKEN or log in with the vault CLI (~/.vault-token); local mode reads secrets with it`,
    );
  }
  return vaultTokenSource({ addr, authMount: 'kubernetes', timeoutMs }, token);
}

/** Signs local pods' tokens; the agent verifies them against `jwks()` as it would the API server's. */
export class LocalTokenIssuer {
  private constructor(
    private readonly key: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'],
    private readonly jwk: JWK,
  ) {}

  static async create(): Promise<LocalTokenIssuer> {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: randomBytes(8).toString('hex'), alg: 'ES256', use: 'sig' };
    return new LocalTokenIssuer(privateKey, jwk);
  }

  jwks(): JSONWebKeySet {
    return { keys: [this.jwk] };
  }

  issue(pod: { name: string; uid: string }, node: string, audience: string): Promise<string> {
    return new SignJWT({
      'kubernetes.io': {
        namespace: LOCAL_NAMESPACE,
        serviceaccount: { name: SERVICE_ACCOUNT, uid: SERVICE_ACCOUNT },
        pod: { name: pod.name, uid: pod.uid },
        node: { name: node, uid: node },
      },
    })
      .setProtectedHeader({ alg: 'ES256', kid: this.jwk.kid! })
      .setIssuer(ISSUER)
      .setSubject(`system:serviceaccount:${LOCAL_NAMESPACE}:${SERVICE_ACCOUNT}`)
      .setAudience(audience)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + TOKEN_TTL_SECONDS)
      .sign(this.key);
  }
}

export interface LocalPodRequest {
  name?: unknown;
  container?: unknown;
  env?: unknown;
  files?: unknown;
  rotateSignal?: unknown;
}

const bad = (message: string) => new NemuError(ErrorCodes.BAD_REQUEST, message, { status: 400 });

function refs(what: 'env' | 'files', input: unknown, name: RegExp): Record<string, string> {
  if (input === undefined) return {};
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw bad(`${what} must be an object of name → vault:<mount>/<path>#<key>`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(input)) {
    if (!name.test(k)) throw bad(`${what}: ${JSON.stringify(k)} is not a ${what === 'env' ? 'variable name' : 'file name (letters, digits, . _ -)'}`);
    if (typeof v !== 'string' || !parseRef(v)) throw bad(`${what}.${k} is not a reference of the form vault:<mount>/<path>#<key>`);
    out[k] = v;
  }
  return out;
}

/** The pods `nemutator run` registered, as the agent's pod informer would hold them. */
export class LocalPods {
  private readonly pods = new Map<string, V1Pod>();

  constructor(private readonly nodeName: string) {}

  get(uid: string): V1Pod | undefined {
    return this.pods.get(uid);
  }

  /** A pod with one container declaring `env` and `files`, as the webhook's annotation says it. */
  register(req: LocalPodRequest): { pod: V1Pod; uid: string; containerId: string } {
    const base = typeof req.name === 'string' && req.name ? req.name : 'app';
    if (!/^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$/.test(base)) throw bad('name must be a DNS label (lowercase letters, digits and -, at most 42 characters)');
    const container = typeof req.container === 'string' && req.container ? req.container : 'app';
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(container)) throw bad('container must be a DNS label');
    const env = refs('env', req.env, /^[A-Za-z_][A-Za-z0-9_]*$/);
    const files = refs('files', req.files, /^(?!\.\.?$)[A-Za-z0-9_.-]+$/);
    if (Object.keys(env).length + Object.keys(files).length === 0)
      throw bad('declare at least one env variable or file (--env NAME=vault:… or --file NAME=vault:…)');
    if (req.rotateSignal !== undefined && (typeof req.rotateSignal !== 'string' || !SIGNALS.includes(req.rotateSignal)))
      throw bad(`rotateSignal must be one of ${SIGNALS.join(', ')}`);
    const uid = randomUUID();
    const containerId = randomBytes(32).toString('hex');
    const name = `${base}-${uid.slice(0, 5)}`;
    const record = { v: 1, containers: { [container]: { env } }, files, ...(req.rotateSignal ? { rotateSignal: req.rotateSignal } : {}) };
    const pod: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: LOCAL_NAMESPACE, uid, annotations: { [SECRETS_ANNOTATION]: JSON.stringify(record) } },
      spec: { nodeName: this.nodeName, serviceAccountName: SERVICE_ACCOUNT, containers: [{ name: container }] },
      status: {
        phase: 'Running',
        containerStatuses: [{ name: container, containerID: `containerd://${containerId}`, ready: true, restartCount: 0, image: 'local', imageID: '' }],
      },
    };
    this.pods.set(uid, pod);
    return { pod, uid, containerId };
  }

  remove(uid: string): boolean {
    return this.pods.delete(uid);
  }
}

export interface LocalPodRoutesDeps {
  pods: LocalPods;
  issuer: LocalTokenIssuer;
  nodeName: string;
  audience: string;
  socketPath: string;
  cgroupRoot: string;
  /** The agent forgets the pod's values and watchers at once. */
  forget(uid: string): Promise<void>;
}

/** `POST /api/v1/local/pods` and `DELETE /api/v1/local/pods/{uid}`: `nemutator run`'s registration. */
export function registerLocalPodRoutes(router: Router, deps: LocalPodRoutesDeps): void {
  router.post('/api/v1/local/pods', { verb: 'create', resource: 'localpods', scope: 'cluster' }, async (req) => {
    const { pod, uid, containerId } = deps.pods.register(await req.json<LocalPodRequest>());
    const name = pod.metadata!.name!;
    req.audit({ pod: `${LOCAL_NAMESPACE}/${name}`, uid });
    const token = await deps.issuer.issue({ name, uid }, deps.nodeName, deps.audience);
    const ticket: LocalPodTicket = {
      uid,
      namespace: LOCAL_NAMESPACE,
      name,
      container: pod.spec!.containers[0]!.name,
      containerId,
      token,
      socketPath: deps.socketPath,
      cgroupRoot: deps.cgroupRoot,
    };
    return { status: 201, body: ticket };
  });
  router.delete('/api/v1/local/pods/{uid}', { verb: 'delete', resource: 'localpods', scope: 'cluster' }, async (req) => {
    const uid = req.params.uid!;
    if (!deps.pods.remove(uid)) throw new NemuError(ErrorCodes.NOT_FOUND, `no local pod ${uid}`, { status: 404 });
    await deps.forget(uid);
    return { status: 204 };
  });
}
