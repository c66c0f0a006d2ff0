// A Vault double: the parts of Vault's HTTP API (v1) the agent uses, with the documented
// request and response shapes, so the real client (`node-vault`) talks to it unchanged.
//   GET  /v1/sys/health
//   POST /v1/auth/<mount>/login                 kubernetes auth: JWT checked against a JWKS,
//                                               role bound to service accounts and namespaces
//   GET/POST /v1/<kv>/data/<path>[?version=N]   KV v2 data
//   GET  /v1/<kv>/metadata/<path>               KV v2 metadata (current_version, versions)
//   GET  /v1/auth/token/lookup-self, POST renew-self, POST revoke-self
// Policies are reduced to what the tests need: a role lists the KV paths (globs) it may read.
import { randomBytes, randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';

export interface VaultRole {
  boundServiceAccountNames: string[];
  boundServiceAccountNamespaces: string[];
  /** The token's `aud` must contain it when set (Vault's `audience` role parameter). */
  audience?: string;
  /** KV v2 logical paths this role may read, `*` = any suffix: `secret/data/app/*`. */
  readPaths: string[];
  /** Token TTL in seconds (Vault's `token_ttl`). Default 3600. */
  ttlSeconds?: number;
}

export interface VaultDoubleOptions {
  /** The JWKS that signs service-account tokens (the kube double's `jwks`). */
  jwks: { keys: JWK[] };
  /** Expected issuer, unless empty. */
  issuer?: string;
  roles?: Record<string, VaultRole>;
  /** Auth mount path. Default `kubernetes`. */
  authMount?: string;
  /** KV v2 mounts. Default ['secret']. */
  kvMounts?: string[];
  port?: number;
}

interface KvVersion {
  data: Record<string, string>;
  created_time: string;
  deletion_time: string;
  destroyed: boolean;
}

interface TokenEntry {
  id: string;
  accessor: string;
  role: string;
  policies: string[];
  readPaths: string[];
  meta: Record<string, string>;
  issued: number;
  expires: number;
  ttl: number;
}

export interface VaultDouble {
  addr: string;
  rootToken: string;
  roles: Record<string, VaultRole>;
  /** Writes a new KV v2 version directly (same as a POST to <mount>/data/<path>); returns the version. */
  put(mountPath: string, data: Record<string, string>): number;
  /** Requests seen, as "METHOD /v1/path" (no bodies, no tokens). */
  requests: string[];
  /** Tokens currently valid (logins minus revoked/expired). */
  liveTokens(): number;
  /** Stops answering (connections refused), keeping its state; start() resumes on the same port. */
  pause(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const nowIso = () => new Date().toISOString();

export async function startVaultDouble(opts: VaultDoubleOptions): Promise<VaultDouble> {
  const jwks = createLocalJWKSet(opts.jwks);
  const authMount = opts.authMount ?? 'kubernetes';
  const kvMounts = new Set(opts.kvMounts ?? ['secret']);
  const roles: Record<string, VaultRole> = { ...(opts.roles ?? {}) };
  const kv = new Map<string, KvVersion[]>(); // "secret/app/db" → versions (index = version-1)
  const tokens = new Map<string, TokenEntry>();
  const rootToken = `hvs.root${randomBytes(12).toString('hex')}`;
  tokens.set(rootToken, {
    id: rootToken,
    accessor: randomUUID(),
    role: '',
    policies: ['root'],
    readPaths: ['*'],
    meta: {},
    issued: Date.now(),
    expires: Infinity,
    ttl: 0,
  });
  const requests: string[] = [];

  const put = (mountPath: string, data: Record<string, string>): number => {
    const versions = kv.get(mountPath) ?? [];
    versions.push({ data: { ...data }, created_time: nowIso(), deletion_time: '', destroyed: false });
    kv.set(mountPath, versions);
    return versions.length;
  };

  const send = (res: http.ServerResponse, status: number, body?: unknown) => {
    if (body === undefined) return void res.writeHead(status).end();
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  };
  const errors = (res: http.ServerResponse, status: number, ...msgs: string[]) => send(res, status, { errors: msgs });
  const envelope = (extra: Record<string, unknown>) => ({
    request_id: randomUUID(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data: null,
    wrap_info: null,
    warnings: null,
    auth: null,
    mount_type: '',
    ...extra,
  });

  const tokenOf = (req: http.IncomingMessage): TokenEntry | undefined => {
    const id = req.headers['x-vault-token'];
    if (typeof id !== 'string') return undefined;
    const t = tokens.get(id);
    if (!t) return undefined;
    if (t.expires <= Date.now()) {
      tokens.delete(id);
      return undefined;
    }
    return t;
  };
  const mayRead = (t: TokenEntry, logical: string) =>
    t.readPaths.some((p) => p === '*' || p === logical || (p.endsWith('*') && logical.startsWith(p.slice(0, -1))));

  async function login(body: Record<string, unknown>, res: http.ServerResponse): Promise<void> {
    const roleName = typeof body.role === 'string' ? body.role : '';
    const jwt = typeof body.jwt === 'string' ? body.jwt : '';
    if (!roleName) return errors(res, 400, 'missing role');
    if (!jwt) return errors(res, 400, 'missing jwt');
    const role = roles[roleName];
    if (!role) return errors(res, 400, `invalid role name "${roleName}"`);
    let claims: Record<string, unknown>;
    try {
      const verified = await jwtVerify(jwt, jwks, { ...(opts.issuer ? { issuer: opts.issuer } : {}), ...(role.audience ? { audience: role.audience } : {}) });
      claims = verified.payload as Record<string, unknown>;
    } catch {
      return errors(res, 403, 'permission denied');
    }
    const k = claims['kubernetes.io'] as
      { namespace?: string; serviceaccount?: { name?: string; uid?: string }; pod?: { name: string; uid: string } } | undefined;
    const ns = k?.namespace ?? '';
    const sa = k?.serviceaccount?.name ?? '';
    if (!role.boundServiceAccountNames.includes('*') && !role.boundServiceAccountNames.includes(sa))
      return errors(res, 403, 'service account name not authorized');
    if (!role.boundServiceAccountNamespaces.includes('*') && !role.boundServiceAccountNamespaces.includes(ns))
      return errors(res, 403, 'namespace not authorized');
    const ttl = role.ttlSeconds ?? 3600;
    const entry: TokenEntry = {
      id: `hvs.${randomBytes(18).toString('base64url')}`,
      accessor: randomBytes(12).toString('base64url'),
      role: roleName,
      policies: ['default', roleName],
      readPaths: role.readPaths,
      meta: {
        role: roleName,
        service_account_name: sa,
        service_account_namespace: ns,
        service_account_uid: k?.serviceaccount?.uid ?? '',
        service_account_secret_name: '',
      },
      issued: Date.now(),
      expires: Date.now() + ttl * 1000,
      ttl,
    };
    tokens.set(entry.id, entry);
    send(
      res,
      200,
      envelope({
        auth: {
          client_token: entry.id,
          accessor: entry.accessor,
          policies: entry.policies,
          token_policies: entry.policies,
          metadata: entry.meta,
          lease_duration: ttl,
          renewable: true,
          entity_id: randomUUID(),
          token_type: 'service',
          orphan: true,
          mfa_requirement: null,
          num_uses: 0,
        },
      }),
    );
  }

  function lookup(t: TokenEntry) {
    const remaining = t.expires === Infinity ? 0 : Math.max(0, Math.round((t.expires - Date.now()) / 1000));
    return {
      accessor: t.accessor,
      creation_time: Math.floor(t.issued / 1000),
      creation_ttl: t.ttl,
      display_name: t.role ? `kubernetes-${t.meta.service_account_namespace}-${t.meta.service_account_name}` : 'root',
      entity_id: '',
      expire_time: t.expires === Infinity ? null : new Date(t.expires).toISOString(),
      explicit_max_ttl: 0,
      id: t.id,
      issue_time: new Date(t.issued).toISOString(),
      meta: t.meta,
      num_uses: 0,
      orphan: true,
      path: t.role ? `auth/${authMount}/login` : 'auth/token/root',
      policies: t.policies,
      renewable: t.role !== '',
      ttl: remaining,
      type: 'service',
    };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://vault');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    requests.push(`${method} ${path}`);
    let body: Record<string, unknown> = {};
    if (method === 'POST' || method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      if (text) {
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          return errors(res, 400, 'failed to parse JSON input');
        }
      }
    }
    if (!path.startsWith('/v1/')) return errors(res, 404);
    const logical = path.slice(4);

    if (logical === 'sys/health') {
      return send(res, 200, {
        initialized: true,
        sealed: false,
        standby: false,
        performance_standby: false,
        replication_performance_mode: 'disabled',
        replication_dr_mode: 'disabled',
        server_time_utc: Math.floor(Date.now() / 1000),
        version: '1.17.0',
        cluster_name: 'vault-double',
        cluster_id: 'vault-double',
      });
    }
    if (logical === `auth/${authMount}/login` && method !== 'GET') return login(body, res);

    const t = tokenOf(req);
    if (!t) return errors(res, 403, 'permission denied');

    if (logical === 'auth/token/lookup-self') return send(res, 200, envelope({ data: lookup(t) }));
    if (logical === 'auth/token/renew-self') {
      if (!t.role) return errors(res, 400, 'lease is not renewable');
      const inc = typeof body.increment === 'number' ? body.increment : Number.parseInt(String(body.increment ?? ''), 10) || t.ttl;
      t.expires = Date.now() + inc * 1000;
      return send(
        res,
        200,
        envelope({
          auth: {
            client_token: t.id,
            accessor: t.accessor,
            policies: t.policies,
            token_policies: t.policies,
            metadata: t.meta,
            lease_duration: inc,
            renewable: true,
            entity_id: '',
            token_type: 'service',
            orphan: true,
          },
        }),
      );
    }
    if (logical === 'auth/token/revoke-self') {
      tokens.delete(t.id);
      return send(res, 204);
    }

    const m = /^([^/]+)\/(data|metadata)\/(.+)$/.exec(logical);
    if (!m || !kvMounts.has(m[1]!)) return errors(res, 404, `no handler for route "${logical}". route entry not found.`);
    const [, mount, kind, rest] = m as unknown as [string, string, string, string];
    const key = `${mount}/${rest}`;
    if (!mayRead(t, logical) && !(method !== 'GET' && t.policies.includes('root'))) return errors(res, 403, 'permission denied');
    if (kind === 'data' && (method === 'POST' || method === 'PUT')) {
      if (!t.policies.includes('root')) return errors(res, 403, 'permission denied');
      const data = body.data;
      if (!data || typeof data !== 'object') return errors(res, 400, 'no data provided');
      const version = put(key, data as Record<string, string>);
      const v = kv.get(key)![version - 1]!;
      return send(res, 200, envelope({ data: { created_time: v.created_time, custom_metadata: null, deletion_time: '', destroyed: false, version } }));
    }
    if (method !== 'GET') return errors(res, 405, 'unsupported operation');
    const versions = kv.get(key);
    if (!versions || versions.length === 0) return errors(res, 404);
    if (kind === 'data') {
      const wanted = url.searchParams.get('version');
      const n = wanted && wanted !== '0' ? Number(wanted) : versions.length;
      const v = versions[n - 1];
      if (!v) return errors(res, 404);
      return send(
        res,
        200,
        envelope({
          data: {
            data: v.destroyed ? null : v.data,
            metadata: { created_time: v.created_time, custom_metadata: null, deletion_time: v.deletion_time, destroyed: v.destroyed, version: n },
          },
        }),
      );
    }
    const versionsMeta: Record<string, unknown> = {};
    versions.forEach((v, i) => (versionsMeta[String(i + 1)] = { created_time: v.created_time, deletion_time: v.deletion_time, destroyed: v.destroyed }));
    return send(
      res,
      200,
      envelope({
        data: {
          cas_required: false,
          created_time: versions[0]!.created_time,
          current_version: versions.length,
          custom_metadata: null,
          delete_version_after: '0s',
          max_versions: 0,
          oldest_version: 0,
          updated_time: versions[versions.length - 1]!.created_time,
          versions: versionsMeta,
        },
      }),
    );
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => errors(res, 500, String(err)));
  });
  let port = opts.port ?? 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  const close = () =>
    new Promise<void>((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
  await listen();

  return {
    addr: `http://127.0.0.1:${port}`,
    rootToken,
    roles,
    put,
    requests,
    liveTokens: () => [...tokens.values()].filter((t) => t.role && t.expires > Date.now()).length,
    pause: close,
    start: listen,
    stop: close,
  };
}
