// The Kubernetes API server double: start it, point kubectl or @kubernetes/client-node at
// the kubeconfig it writes, and reach into its store from tests.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';

import { type ServiceResolver, WebhookAdmission } from './admission.ts';
import { ADMIN_USER, type BoundObjectLookup, randomToken, TokenIssuer, type UserInfo } from './auth.ts';
import { Controllers } from './controllers.ts';
import { renderKubeconfig } from './kubeconfig.ts';
import { bootstrapRbac, type RbacObjects } from './rbac.ts';
import { type DeleteResult, Registry } from './registry.ts';
import { RESOURCES, ResourceTable, type ResourceType } from './resources.ts';
import { createRequestHandler } from './server.ts';
import { type KubeObject, ObjectStore } from './store.ts';
import { type CertificateAuthority, createCertificateAuthority } from './tls.ts';
import { WatchHub } from './watch.ts';

export type { ServiceResolver } from './admission.ts';
export type { UserInfo } from './auth.ts';
export { renderKubeconfig } from './kubeconfig.ts';
export { ApiError } from './status.ts';
export type { KubeObject } from './store.ts';
export { type CertificateAuthority, createCertificateAuthority, type ServingCertificate } from './tls.ts';

export interface KubeDoubleOptions {
  /** Also serve plain HTTP on loopback (same authentication). */
  http?: boolean;
  /** Deployment/ReplicaSet/StatefulSet/DaemonSet/disruption controllers. Default true. */
  controllers?: boolean;
  /** Scheduler + kubelet stand-in (pods become Running and Ready). Default: as `controllers`. */
  kubelet?: boolean;
  /** Nodes present at start. Default ['node-1']. */
  nodes?: string[];
  /** HTTPS port (0 = any free port). */
  port?: number;
  /** Where to write the kubeconfig (default: a fresh temporary directory). */
  kubeconfigPath?: string;
  /** Watch-resume history (events). Default 1000. */
  historySize?: number;
  /** Interval of BOOKMARK events for watches that allow them. Default 60 s. */
  bookmarkIntervalMs?: number;
  /** Maps webhook `service` references to URLs. */
  serviceResolver?: ServiceResolver;
  /** Service-account token issuer; default the server URL (so OIDC discovery works on it). */
  issuer?: string;
  /** Delay before a scheduled pod is reported Running. Default 0. */
  podStartDelayMs?: number;
}

export interface IssueTokenOptions {
  namespace: string;
  serviceAccount: string;
  audiences?: string[];
  pod?: { name: string; uid: string };
  node?: { name: string; uid: string };
  /** Any value, including negative ones, for expiry tests. Default 3600. */
  expirationSeconds?: number;
}

export interface WebhookCall {
  webhook: string;
  /** Empty when the webhook was not called: a matchCondition was false or failed to evaluate. */
  uid: string;
  operation: string;
  outcome: string;
}

export interface RequestLogEntry {
  method: string;
  path: string;
  user: string;
  status: number;
}

export interface KubeDouble {
  url: string;
  /** Plain-HTTP URL when started with `http: true`. */
  httpUrl?: string;
  caPem: string;
  /** The CA that signed the serving certificate; tests can issue webhook certificates with it. */
  ca: CertificateAuthority;
  kubeconfigPath: string;
  kubeconfigYaml: string;
  adminToken: string;
  issuer: string;
  jwks: { keys: JWK[] };
  /** Signs a service-account token as TokenRequest would (creating the namespace and service account if absent). */
  issueToken(opts: IssueTokenOptions): Promise<string>;
  /** Kubeconfig for a given bearer token (e.g. a service account's), written next to the admin one. */
  kubeconfigFor(token: string, name: string): Promise<string>;

  // ---- store access ("pods", "deployments.apps", "leases.coordination.k8s.io") ----
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resource: string, namespace?: string): KubeObject[];
  /** Creates or replaces an object directly, without admission or validation. */
  put(obj: KubeObject): KubeObject;
  /** Creates an object through the API path (defaulting, admission webhooks, validation). */
  create(obj: KubeObject, opts?: { user?: UserInfo; dryRun?: boolean }): Promise<KubeObject>;
  delete(resource: string, namespace: string | undefined, name: string): Promise<DeleteResult>;
  resource(name: string): ResourceType;
  registry: Registry;
  store: ObjectStore;

  // ---- test hooks ----
  serviceResolver: ServiceResolver | undefined;
  /** Every admission webhook call and its outcome, oldest first. */
  webhookCalls: WebhookCall[];
  /** Every API request (method, path with query, user, status), oldest first; the last 5000. */
  requests: RequestLogEntry[];
  /** Ends all open watches: 'end' closes them cleanly, 'reset' destroys the connections. */
  dropWatches(mode?: 'end' | 'reset'): number;
  /** Forgets watch history: resuming from any earlier resourceVersion gets 410 Gone. */
  compact(): void;
  /** Waits until controllers and garbage collection are quiet. */
  settle(): Promise<void>;
  stop(): Promise<void>;
}

const VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-12-11T00:00:00Z',
  goVersion: 'go1.23.3',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export async function startKubeDouble(opts: KubeDoubleOptions = {}): Promise<KubeDouble> {
  const table = new ResourceTable(RESOURCES);
  const store = new ObjectStore({ historySize: opts.historySize });
  const registry = new Registry(table, store);
  const watches = new WatchHub(store, { bookmarkIntervalMs: opts.bookmarkIntervalMs });
  const ca = await createCertificateAuthority();
  const serving = await ca.issue({
    commonName: 'kube-apiserver',
    dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
    ips: ['127.0.0.1', '10.96.0.1'],
  });
  const adminToken = randomToken();
  const R = (group: string, plural: string): ResourceType => table.require(group, plural);

  const lookup: BoundObjectLookup = {
    uidOf(kind, namespace, name) {
      const r = kind === 'ServiceAccount' ? R('', 'serviceaccounts') : kind === 'Pod' ? R('', 'pods') : kind === 'Secret' ? R('', 'secrets') : R('', 'nodes');
      return store.get(r, namespace, name)?.metadata.uid;
    },
  };
  const rbac: RbacObjects = {
    clusterRoles: () => store.list(R('rbac.authorization.k8s.io', 'clusterroles')),
    clusterRoleBindings: () => store.list(R('rbac.authorization.k8s.io', 'clusterrolebindings')),
    roles: (ns) => store.list(R('rbac.authorization.k8s.io', 'roles'), ns),
    roleBindings: (ns) => store.list(R('rbac.authorization.k8s.io', 'rolebindings'), ns),
  };

  const webhookCalls: WebhookCall[] = [];
  const requests: RequestLogEntry[] = [];
  const double = {} as KubeDouble;
  double.serviceResolver = opts.serviceResolver;
  registry.admission = new WebhookAdmission({
    configurations: () => store.list(R('admissionregistration.k8s.io', 'mutatingwebhookconfigurations')),
    namespaceLabels: (ns) => store.get(R('', 'namespaces'), undefined, ns)?.metadata.labels,
    serviceResolver: (ns, name, port) => double.serviceResolver?.(ns, name, port),
    onCall: (call) => webhookCalls.push(call),
  });

  // Listen first: the issuer is the server's own URL, so OIDC discovery works against it.
  const server = https.createServer({ key: serving.keyPem, cert: serving.certPem });
  await listen(server, opts.port ?? 0);
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = await TokenIssuer.create(opts.issuer ?? url, [opts.issuer ?? url]);
  const handler = createRequestHandler({
    table,
    registry,
    watches,
    issuer,
    adminToken,
    rbac,
    lookup,
    url: () => url,
    version: VERSION,
    onRequest: (entry) => {
      requests.push(entry);
      if (requests.length > 5000) requests.splice(0, requests.length - 5000);
    },
  });
  server.on('request', handler);
  let httpServer: http.Server | undefined;
  let httpUrl: string | undefined;
  if (opts.http) {
    httpServer = http.createServer(handler);
    await listen(httpServer, 0);
    httpUrl = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
  }

  // Cluster basics: the service-account and root-CA publishers run for every namespace.
  store.subscribe((e) => {
    if (e.resource.kind !== 'Namespace' || e.type !== 'ADDED') return;
    const ns = e.object.metadata.name as string;
    queueMicrotask(() => {
      if (!store.get(R('', 'namespaces'), undefined, ns)) return;
      if (!store.get(R('', 'serviceaccounts'), ns, 'default')) registry.put(R('', 'serviceaccounts'), { metadata: { name: 'default', namespace: ns } });
      if (!store.get(R('', 'configmaps'), ns, 'kube-root-ca.crt')) {
        registry.put(R('', 'configmaps'), {
          metadata: {
            name: 'kube-root-ca.crt',
            namespace: ns,
            annotations: {
              'kubernetes.io/description':
                'Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.',
            },
          },
          data: { 'ca.crt': ca.certPem },
        });
      }
    });
  });
  for (const ns of ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    registry.put(R('', 'namespaces'), {
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }
  const boot = bootstrapRbac();
  for (const cr of boot.clusterRoles) registry.put(R('rbac.authorization.k8s.io', 'clusterroles'), cr);
  for (const crb of boot.clusterRoleBindings) registry.put(R('rbac.authorization.k8s.io', 'clusterrolebindings'), crb);
  (opts.nodes ?? ['node-1']).forEach((name, i) => registry.put(R('', 'nodes'), nodeObject(name, i)));
  registry.put(R('', 'services'), {
    metadata: { name: 'kubernetes', namespace: 'default', labels: { component: 'apiserver', provider: 'kubernetes' } },
    spec: {
      clusterIP: '10.96.0.1',
      clusterIPs: ['10.96.0.1'],
      ports: [{ name: 'https', port: 443, protocol: 'TCP', targetPort: 6443 }],
      type: 'ClusterIP',
      sessionAffinity: 'None',
    },
    status: { loadBalancer: {} },
  });
  await new Promise((r) => setImmediate(r));

  const workloads = opts.controllers ?? true;
  const controllers = new Controllers(registry, { workloads, kubelet: opts.kubelet ?? workloads, podStartDelayMs: opts.podStartDelayMs });
  if (workloads || opts.kubelet) controllers.start();

  let tmpDir: string | undefined;
  let kubeconfigPath = opts.kubeconfigPath;
  if (!kubeconfigPath) {
    tmpDir = await mkdtemp(join(tmpdir(), 'nemutator-kube-double-'));
    kubeconfigPath = join(tmpDir, 'kubeconfig');
  }
  const kubeconfigYaml = renderKubeconfig({ server: url, caPem: ca.certPem, token: adminToken });
  await writeFile(kubeconfigPath, kubeconfigYaml, { mode: 0o600 });
  const extraConfigs: string[] = [];

  const byName = (name: string): ResourceType => {
    const [plural, ...groupParts] = name.split('.');
    const group = groupParts.join('.');
    const r = table.all.find((x) => x.plural === plural && x.group === group) ?? table.all.find((x) => x.plural === plural);
    if (!r) throw new Error(`NEMU_ERR_KUBE_DOUBLE_RESOURCE: no resource "${name}"; use a plural such as "pods" or "deployments.apps"`);
    return r;
  };
  const byObject = (obj: KubeObject): ResourceType => {
    const r = table.byApiVersionKind(String(obj.apiVersion), String(obj.kind));
    if (!r) throw new Error(`NEMU_ERR_KUBE_DOUBLE_RESOURCE: the double does not serve ${String(obj.apiVersion)} ${String(obj.kind)}`);
    return r;
  };

  Object.assign(double, {
    url,
    httpUrl,
    caPem: ca.certPem,
    ca,
    kubeconfigPath,
    kubeconfigYaml,
    adminToken,
    issuer: issuer.issuer,
    jwks: issuer.jwks,
    registry,
    store,
    webhookCalls,
    requests,
    async issueToken(o: IssueTokenOptions): Promise<string> {
      const nsR = R('', 'namespaces');
      if (!store.get(nsR, undefined, o.namespace))
        registry.put(nsR, { metadata: { name: o.namespace }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
      const saR = R('', 'serviceaccounts');
      const sa = store.get(saR, o.namespace, o.serviceAccount) ?? registry.put(saR, { metadata: { name: o.serviceAccount, namespace: o.namespace } });
      let node = o.node;
      if (o.pod && !node) {
        const nodeName = (store.get(R('', 'pods'), o.namespace, o.pod.name)?.['spec'] as { nodeName?: string } | undefined)?.nodeName;
        const n = nodeName ? store.get(R('', 'nodes'), undefined, nodeName) : undefined;
        if (n) node = { name: nodeName as string, uid: n.metadata.uid as string };
      }
      const { token } = await issuer.issue({
        namespace: o.namespace,
        serviceAccount: { name: o.serviceAccount, uid: sa.metadata.uid as string },
        audiences: o.audiences ?? [],
        expirationSeconds: o.expirationSeconds ?? 3600,
        ...(o.pod ? { pod: o.pod } : {}),
        ...(node ? { node } : {}),
      });
      return token;
    },
    async kubeconfigFor(token: string, name: string): Promise<string> {
      const path = `${kubeconfigPath}-${name.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
      await writeFile(path, renderKubeconfig({ server: url, caPem: ca.certPem, token, user: name }), { mode: 0o600 });
      extraConfigs.push(path);
      return path;
    },
    get: (resource: string, namespace: string | undefined, name: string) => store.get(byName(resource), namespace, name),
    list: (resource: string, namespace?: string) => store.list(byName(resource), namespace),
    put: (obj: KubeObject) => registry.put(byObject(obj), obj),
    create: (obj: KubeObject, o: { user?: UserInfo; dryRun?: boolean } = {}) => {
      const r = byObject(obj);
      return registry.create(r, r.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined, obj, { user: o.user ?? ADMIN_USER, dryRun: o.dryRun });
    },
    delete: (resource: string, namespace: string | undefined, name: string) => registry.delete(byName(resource), namespace, name, {}, { user: ADMIN_USER }),
    resource: byName,
    dropWatches: (mode: 'end' | 'reset' = 'end') => watches.dropAll(mode),
    compact: () => store.compact(),
    async settle(): Promise<void> {
      for (let i = 0; i < 5; i++) {
        await registry.settle();
        await controllers.idle();
      }
    },
    async stop(): Promise<void> {
      await controllers.stop();
      watches.dropAll('reset');
      await Promise.all([close(server), httpServer ? close(httpServer) : Promise.resolve()]);
      if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
      else for (const p of extraConfigs) await rm(p, { force: true });
    },
  } satisfies Omit<KubeDouble, 'serviceResolver'>);
  return double;
}

function nodeObject(name: string, i: number): KubeObject {
  return {
    metadata: {
      name,
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
      },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { podCIDR: `10.244.${i}.0/24`, podCIDRs: [`10.244.${i}.0/24`] },
    status: {
      capacity: { cpu: '4', memory: '8148992Ki', pods: '110', 'ephemeral-storage': '102687672Ki' },
      allocatable: { cpu: '4', memory: '8046592Ki', pods: '110', 'ephemeral-storage': '94636958654' },
      conditions: [
        { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
        { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
        { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available' },
        { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.0.${10 + i}` },
        { type: 'Hostname', address: name },
      ],
      nodeInfo: {
        kubeletVersion: 'v1.32.0',
        kubeProxyVersion: 'v1.32.0',
        containerRuntimeVersion: 'containerd://1.7.24',
        operatingSystem: 'linux',
        architecture: 'amd64',
        osImage: 'Debian GNU/Linux 12 (bookworm)',
        kernelVersion: '6.1.0',
        machineID: '',
        systemUUID: '',
        bootID: '',
      },
    },
  };
}

function listen(server: http.Server | https.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: http.Server | https.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
