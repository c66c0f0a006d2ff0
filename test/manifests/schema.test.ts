/**
 * The shipped manifests, as `kubectl apply -k manifests/` would send them, checked three ways:
 * 1. every object against the Kubernetes OpenAPI schema (kubernetes-models' validators),
 *    plus strict field validation (unknown fields, which kubectl's default
 *    --validate=strict rejects and the OpenAPI validators let through), using the field
 *    lists of @kubernetes/client-node's generated models;
 * 2. references between objects resolve (volumes, named ports, selectors, bindings, the
 *    webhook's Service), which no schema checks;
 * 3. the properties the design requires (webhook safety settings, replicas and PDB,
 *    agent privileges, least-privilege RBAC).
 */
import * as k8s from '@kubernetes/client-node';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CSIDriver } from 'kubernetes-models/storage.k8s.io/v1';
import { ConfigMap, Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';

import { componentNames, type KubeObject,render } from './render.ts';

// Loose structural views of the parts the assertions read. The schema test above them is
// what guarantees the shapes; these only spare casts.
type Rule = { apiGroups?: string[]; resources?: string[]; verbs: string[]; resourceNames?: string[] };
type Selector = { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
type Probe = { httpGet?: { path: string; port: number | string; scheme?: string } };
type Container = {
  name: string;
  image: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { configMapKeyRef?: { name: string; key: string; optional?: boolean }; secretKeyRef?: { name: string; key: string; optional?: boolean }; fieldRef?: { fieldPath: string } } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }[];
  args?: string[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    privileged?: boolean;
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
    seccompProfile?: { type: string };
  };
};
type Volume = {
  name: string;
  hostPath?: { path: string; type?: string };
  configMap?: { name: string; optional?: boolean; items?: { key: string; path: string }[] };
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] };
};
type PodSpec = {
  serviceAccountName?: string;
  hostPID?: boolean;
  priorityClassName?: string;
  tolerations?: { operator?: string; key?: string; effect?: string }[];
  securityContext?: { runAsNonRoot?: boolean; seccompProfile?: { type: string } };
  topologySpreadConstraints?: { topologyKey: string; labelSelector?: Selector }[];
  affinity?: { podAntiAffinity?: unknown };
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
};
type Workload = KubeObject & {
  spec: {
    replicas?: number;
    selector: Selector;
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
    updateStrategy?: { type: string; rollingUpdate?: { maxUnavailable?: number | string } };
  };
};
type Webhook = {
  name: string;
  clientConfig: { service?: { name: string; namespace: string; port?: number; path?: string }; caBundle?: string; url?: string };
  rules: { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[]; scope?: string }[];
  failurePolicy?: string;
  timeoutSeconds?: number;
  sideEffects: string;
  reinvocationPolicy?: string;
  matchPolicy?: string;
  admissionReviewVersions: string[];
  namespaceSelector?: Selector;
  objectSelector?: Selector;
  matchConditions?: { name: string; expression: string }[];
};

interface Validatable {
  validate(): void;
}
type ModelClass = new (data: never) => Validatable;

/**
 * apiVersion/kind → the schema model (kubernetes-models) and the name of the
 * @kubernetes/client-node model whose field list drives strict validation. A kind shipped
 * in manifests/ must be listed here, or the test fails: nothing goes out unchecked.
 */
const KINDS: Record<string, { model: ModelClass; fields: string }> = {
  'v1/Namespace': { model: Namespace, fields: 'V1Namespace' },
  'v1/ServiceAccount': { model: ServiceAccount, fields: 'V1ServiceAccount' },
  'v1/ConfigMap': { model: ConfigMap, fields: 'V1ConfigMap' },
  'v1/Service': { model: Service, fields: 'V1Service' },
  'apps/v1/Deployment': { model: Deployment, fields: 'V1Deployment' },
  'apps/v1/DaemonSet': { model: DaemonSet, fields: 'V1DaemonSet' },
  'policy/v1/PodDisruptionBudget': { model: PodDisruptionBudget, fields: 'V1PodDisruptionBudget' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { model: ClusterRole, fields: 'V1ClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { model: ClusterRoleBinding, fields: 'V1ClusterRoleBinding' },
  'rbac.authorization.k8s.io/v1/Role': { model: Role, fields: 'V1Role' },
  'rbac.authorization.k8s.io/v1/RoleBinding': { model: RoleBinding, fields: 'V1RoleBinding' },
  'admissionregistration.k8s.io/v1/MutatingWebhookConfiguration': { model: MutatingWebhookConfiguration, fields: 'V1MutatingWebhookConfiguration' },
  'storage.k8s.io/v1/CSIDriver': { model: CSIDriver, fields: 'V1CSIDriver' },
};

/** Roles the apiserver bootstraps, which a component may bind but never ships. */
const BUILT_IN_ROLES = new Set(['ClusterRole/system:kube-scheduler', 'ClusterRole/system:volume-scheduler', 'Role/extension-apiserver-authentication-reader']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration', 'CSIDriver']);

function kindOf(obj: { apiVersion?: unknown; kind?: unknown }): (typeof KINDS)[string] {
  const key = `${String(obj.apiVersion)}/${String(obj.kind)}`;
  const entry = KINDS[key];
  if (!entry) throw new Error(`no schema for ${key}: add it to KINDS in test/manifests/schema.test.ts before shipping it`);
  return entry;
}

/** Schema errors, or [] when the object is valid. */
function schemaErrors(obj: KubeObject): string[] {
  const { model } = kindOf(obj);
  try {
    new model(structuredClone(obj) as never).validate();
    return [];
  } catch (e) {
    return [(e as Error).message];
  }
}

type AttributeTypeMap = ReadonlyArray<{ baseName: string; type: string }>;
const PRIMITIVES = new Set(['string', 'number', 'boolean', 'Date', 'any', 'object', 'IntOrString']);

function attributeTypeMap(typeName: string): AttributeTypeMap | undefined {
  const cls = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => AttributeTypeMap } | undefined>)[typeName];
  return cls?.getAttributeTypeMap?.();
}

/** Paths of fields the OpenAPI type `type` does not declare (what --validate=strict rejects). */
function unknownFields(value: unknown, type: string, path: string, out: string[] = []): string[] {
  if (value === null || value === undefined || PRIMITIVES.has(type)) return out;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((item, i) => unknownFields(item, array[1]!, `${path}[${i}]`, out));
    return out;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, map[1]!, `${path}.${k}`, out);
    return out;
  }
  const attributes = attributeTypeMap(type);
  if (!attributes) throw new Error(`strict validation cannot resolve OpenAPI type ${type} at ${path}`);
  if (typeof value !== 'object' || Array.isArray(value)) return out; // a type error: the schema validator reports it
  const declared = new Map(attributes.map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const fieldType = declared.get(k);
    if (fieldType === undefined) out.push(`${path}.${k}`);
    else unknownFields(v, fieldType, `${path}.${k}`, out);
  }
  return out;
}

function selects(selector: Selector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = k8sHas(labels, e.key);
    const value = labels[e.key];
    if (e.operator === 'In' && !(has && e.values!.includes(value!))) return false;
    if (e.operator === 'NotIn' && has && e.values!.includes(value!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}
function k8sHas(labels: Record<string, string>, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(labels, key);
}

let objects: KubeObject[] = [];
function find<T extends KubeObject = KubeObject>(kind: string, name: string, namespace?: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
  if (!found) throw new Error(`manifests/ ships no ${kind} ${namespace ? namespace + '/' : ''}${name}`);
  return found as T;
}
function containerOf(workload: Workload, name: string): Container {
  const c = workload.spec.template.spec.containers.find((x) => x.name === name);
  if (!c) throw new Error(`${workload.kind} ${workload.metadata.name} has no container ${name}`);
  return c;
}
function envOf(c: Container): Map<string, NonNullable<Container['env']>[number]> {
  return new Map((c.env ?? []).map((e) => [e.name, e]));
}
const workloads = (): Workload[] => objects.filter((o): o is Workload => o.kind === 'Deployment' || o.kind === 'DaemonSet');

/** The base with every component enabled: what an overlay that turns all features on ships. */
let withComponents: KubeObject[] = [];
beforeAll(() => {
  objects = render();
  withComponents = render(componentNames());
});

describe('manifests/ against the Kubernetes OpenAPI schema', () => {
  it('builds with kubectl kustomize and ships every expected object', () => {
    const names = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(names).toEqual(
      expect.arrayContaining([
        'Namespace/nemutator',
        'ServiceAccount/nemutator-controller',
        'ServiceAccount/nemutator-agent',
        'Deployment/nemutator-controller',
        'DaemonSet/nemutator-agent',
        'Service/nemutator-controller',
        'PodDisruptionBudget/nemutator-controller',
        'ClusterRole/nemutator-controller',
        'ClusterRole/nemutator-agent',
        'ClusterRole/nemutator-viewer',
        'ClusterRole/nemutator-dictionary-editor',
        'ClusterRole/nemutator-operator',
        'ClusterRole/nemutator-profiler',
        'ClusterRole/nemutator-secrets-rotator',
        'Role/nemutator-controller',
        'MutatingWebhookConfiguration/nemutator',
        'CSIDriver/csi.nemutator.io',
      ]),
    );
    expect(new Set(names).size, 'no object is shipped twice').toBe(names.length);
  });

  it('validates every object against its schema, with no unknown fields (components enabled too)', () => {
    const problems: string[] = [];
    for (const obj of withComponents) {
      const id = `${obj.kind}/${obj.metadata?.name}`;
      for (const e of schemaErrors(obj)) problems.push(`${id}: ${e}`);
      for (const f of unknownFields(obj, kindOf(obj).fields, '')) problems.push(`${id}: unknown field ${f}`);
    }
    expect(problems).toEqual([]);
  });

  it('rejects what the apiserver would reject (the validators are really on)', () => {
    const deployment = structuredClone(find<Workload>('Deployment', 'nemutator-controller'));
    expect(schemaErrors(deployment)).toEqual([]);

    const wrongType = structuredClone(deployment) as unknown as { spec: Record<string, unknown> };
    wrongType.spec.replicas = 'two';
    expect(schemaErrors(wrongType as unknown as KubeObject).join()).toMatch(/replicas must be integer/);

    const misspelt = structuredClone(deployment) as unknown as { spec: Record<string, unknown> };
    misspelt.spec.replica = 2;
    expect(unknownFields(misspelt, 'V1Deployment', '')).toEqual(['.spec.replica']);

    const deepTypo = structuredClone(deployment);
    (deepTypo.spec.template.spec.containers[0]!.securityContext as Record<string, unknown>).readonlyRootFilesystem = true;
    expect(unknownFields(deepTypo, 'V1Deployment', '')).toEqual(['.spec.template.spec.containers[0].securityContext.readonlyRootFilesystem']);

    const webhook = structuredClone(find('MutatingWebhookConfiguration', 'nemutator')) as unknown as { webhooks: Record<string, unknown>[] };
    delete webhook.webhooks[0]!.sideEffects;
    expect(schemaErrors(webhook as unknown as KubeObject).join()).toMatch(/sideEffects/);
  });

  it('refuses a kind it has no schema for', () => {
    expect(() => kindOf({ apiVersion: 'stable.example.com/v1', kind: 'CronTab' })).toThrow(/no schema for stable.example.com\/v1\/CronTab/);
  });
});

describe('references between the manifests resolve', () => {
  it('puts namespaced objects in nemutator and leaves cluster-scoped ones without a namespace', () => {
    for (const o of objects) {
      if (CLUSTER_SCOPED.has(o.kind)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBeUndefined();
      else expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('nemutator');
    }
  });

  it('labels everything part-of nemutator, but keeps the label out of immutable selectors', () => {
    for (const o of withComponents) expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind}/${o.metadata.name}`).toBe('nemutator');
    for (const w of workloads()) {
      expect(w.spec.selector.matchLabels).not.toHaveProperty('app.kubernetes.io/part-of');
      expect(selects(w.spec.selector, w.spec.template.metadata.labels), `${w.kind} ${w.metadata.name} selects its own pods`).toBe(true);
    }
  });

  it('gives every pod a shipped service account, its volumes, named probe ports and unique env', () => {
    for (const w of workloads()) {
      const pod = w.spec.template.spec;
      find('ServiceAccount', pod.serviceAccountName!, w.metadata.namespace);
      const volumes = new Set((pod.volumes ?? []).map((v) => v.name));
      expect(volumes.size).toBe((pod.volumes ?? []).length);
      for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${w.metadata.name}/${c.name} mounts ${m.name}`).toBe(true);
        const ports = new Set((c.ports ?? []).map((p) => p.name));
        for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
          const port = probe?.httpGet?.port;
          if (typeof port === 'string') expect(ports.has(port), `${w.metadata.name}/${c.name} probes port ${port}`).toBe(true);
        }
        const env = (c.env ?? []).map((e) => e.name);
        expect(new Set(env).size, `${w.metadata.name}/${c.name} env names are unique`).toBe(env.length);
        for (const e of c.env ?? []) {
          const ref = e.valueFrom?.configMapKeyRef;
          if (ref && !ref.optional) find('ConfigMap', ref.name, w.metadata.namespace);
        }
      }
    }
  });

  it('points every Service at pods that expose its named target ports', () => {
    for (const svc of objects.filter((o) => o.kind === 'Service')) {
      const spec = svc.spec as { selector: Record<string, string>; ports: { name: string; targetPort: string | number }[] };
      const backends = workloads().filter((w) => w.metadata.namespace === svc.metadata.namespace && selects({ matchLabels: spec.selector }, w.spec.template.metadata.labels));
      expect(backends.map((w) => w.metadata.name), `Service ${svc.metadata.name} selects exactly one workload`).toHaveLength(1);
      const ports = new Set(backends[0]!.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
      for (const p of spec.ports) if (typeof p.targetPort === 'string') expect(ports.has(p.targetPort), `Service ${svc.metadata.name} targets ${p.targetPort}`).toBe(true);
    }
  });

  it('binds shipped roles to shipped service accounts (components enabled too)', () => {
    const in_ = (kind: string, name: string, namespace?: string) =>
      withComponents.some((o) => o.kind === kind && o.metadata.name === name && (namespace === undefined || o.metadata.namespace === namespace));
    for (const b of withComponents.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
      const roleRef = b.roleRef as { kind: string; name: string };
      // The second scheduler (component scheduler) is bound to the roles the apiserver itself
      // keeps for kube-scheduler, as upstream's "Configure Multiple Schedulers" does.
      const builtIn = BUILT_IN_ROLES.has(`${roleRef.kind}/${roleRef.name}`);
      expect(builtIn || in_(roleRef.kind, roleRef.name, roleRef.kind === 'Role' ? b.metadata.namespace : undefined), `${b.kind}/${b.metadata.name} -> ${roleRef.kind}/${roleRef.name}`).toBe(
        true,
      );
      for (const s of b.subjects as { kind: string; name: string; namespace?: string }[]) {
        expect(s.kind).toBe('ServiceAccount');
        expect(in_('ServiceAccount', s.name, s.namespace), `${b.kind}/${b.metadata.name} binds ${s.namespace}/${s.name}`).toBe(true);
      }
    }
  });

  it('routes the webhook and the agents to ports the controller Service has', () => {
    const svc = find('Service', 'nemutator-controller', 'nemutator').spec as { ports: { name: string; port: number; targetPort: string }[] };
    const webhookPort = svc.ports.find((p) => p.port === 443);
    expect(webhookPort?.targetPort).toBe('webhook');
    for (const w of (find('MutatingWebhookConfiguration', 'nemutator') as unknown as { webhooks: Webhook[] }).webhooks) {
      expect(w.clientConfig.service).toEqual({ name: 'nemutator-controller', namespace: 'nemutator', port: 443, path: '/mutate' });
    }
    const controller = containerOf(find<Workload>('Deployment', 'nemutator-controller'), 'controller');
    expect(controller.ports?.find((p) => p.name === 'webhook')?.containerPort).toBe(8443);

    const agentEnv = envOf(containerOf(find<Workload>('DaemonSet', 'nemutator-agent'), 'agent'));
    const url = new URL(agentEnv.get('NEMUTATOR_CONTROLLER_URL')!.value!);
    expect(url.protocol).toBe('wss:');
    expect(url.hostname).toBe('nemutator-controller.nemutator.svc');
    expect(svc.ports.find((p) => p.port === Number(url.port))?.targetPort).toBe('fleet');
    expect(url.pathname).toBe('/fleet');
  });
});

describe('what the design requires of the manifests', () => {
  const webhooks = (): Webhook[] => (find('MutatingWebhookConfiguration', 'nemutator') as unknown as { webhooks: Webhook[] }).webhooks;

  it('lets a terminating controller replica answer the reviews still routed to it (preStop, then a drain within the grace period)', () => {
    const deployment = find<Workload>('Deployment', 'nemutator-controller');
    const spec = deployment.spec.template.spec as PodSpec & { terminationGracePeriodSeconds?: number };
    const c = containerOf(deployment, 'controller') as Container & { lifecycle?: { preStop?: { exec?: { command: string[] }; sleep?: { seconds: number } } } };
    const preStop = c.lifecycle?.preStop;
    const sleepSeconds = preStop?.sleep?.seconds ?? (preStop?.exec?.command[0]?.endsWith('sleep') ? Number(preStop.exec.command[1]) : 0);
    expect(sleepSeconds).toBeGreaterThanOrEqual(3);
    // The controller's defaults: shutdownDrain 5 s, shutdownTimeout 15 s.
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(sleepSeconds + 5 + 15);
  });

  it('never lets the webhook block or slow a workload for long, unless the pod asks for it', () => {
    expect(webhooks().map((w) => w.name).sort()).toEqual(['deployments.nemutator.io', 'pods.nemutator.io', 'secrets-required.pods.nemutator.io']);
    for (const w of webhooks()) {
      // Only pods labelled nemutator.io/secrets=required are refused when the webhook is down.
      expect(w.failurePolicy, w.name).toBe(w.name === 'secrets-required.pods.nemutator.io' ? 'Fail' : 'Ignore');
      expect(w.sideEffects, w.name).toBe('NoneOnDryRun');
      expect(w.reinvocationPolicy, w.name).toBe('IfNeeded');
      expect(w.matchPolicy, w.name).toBe('Equivalent');
      expect(w.admissionReviewVersions, w.name).toEqual(['v1']);
      expect(w.timeoutSeconds, w.name).toBeLessThanOrEqual(10);
      // The leader owns caBundle; shipping a value (even "") would reset it on re-apply.
      expect(w.clientConfig.caBundle, w.name).toBeUndefined();
    }
  });

  it('intercepts pod creation and deployment creation and updates only', () => {
    const byName = new Map(webhooks().map((w) => [w.name, w]));
    for (const name of ['pods.nemutator.io', 'secrets-required.pods.nemutator.io']) {
      expect(byName.get(name)!.rules, name).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
    }
    expect(byName.get('deployments.nemutator.io')!.rules).toEqual([
      { apiGroups: ['apps'], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['deployments'], scope: 'Namespaced' },
    ]);
  });

  it('leaves system namespaces, its own namespace and opted-out namespaces and objects alone', () => {
    for (const w of webhooks()) {
      const ns = (name: string, labels: Record<string, string> = {}): Record<string, string> => ({ 'kubernetes.io/metadata.name': name, ...labels });
      for (const excluded of ['kube-system', 'kube-node-lease', 'nemutator']) expect(selects(w.namespaceSelector!, ns(excluded)), `${w.name} ${excluded}`).toBe(false);
      expect(selects(w.namespaceSelector!, ns('team-a', { 'nemutator.io/skip': 'true' })), `${w.name} opted-out namespace`).toBe(false);
      expect(selects(w.namespaceSelector!, ns('team-a')), `${w.name} ordinary namespace`).toBe(true);
      expect(selects(w.namespaceSelector!, ns('kube-public')), `${w.name} kube-public`).toBe(true);
      expect(selects(w.objectSelector!, { 'nemutator.io/skip': 'true' }), `${w.name} opted-out object`).toBe(false);
      expect(selects(w.objectSelector!, { 'nemutator.io/skip': 'true', 'nemutator.io/secrets': 'required' }), `${w.name} opted-out object`).toBe(false);
      expect(selects(w.objectSelector!, { app: 'web' }), `${w.name} ordinary object`).toBe(w.name !== 'secrets-required.pods.nemutator.io');
    }
  });

  it('sends each pod to exactly one pod webhook: the Fail one only when it is labelled nemutator.io/secrets=required', () => {
    const podHooks = webhooks().filter((w) => w.rules.some((r) => r.resources.includes('pods')));
    const takers = (labels: Record<string, string>) => podHooks.filter((w) => selects(w.objectSelector!, labels)).map((w) => w.name);
    expect(takers({})).toEqual(['pods.nemutator.io']);
    expect(takers({ app: 'web' })).toEqual(['pods.nemutator.io']);
    expect(takers({ 'nemutator.io/secrets': 'optional' })).toEqual(['pods.nemutator.io']);
    expect(takers({ app: 'web', 'nemutator.io/secrets': 'required' })).toEqual(['secrets-required.pods.nemutator.io']);
    expect(takers({ 'nemutator.io/secrets': 'required', 'nemutator.io/skip': 'true' })).toEqual([]);
    const [ignore, fail] = ['pods.nemutator.io', 'secrets-required.pods.nemutator.io'].map((n) => podHooks.find((w) => w.name === n)!) as [Webhook, Webhook];
    // Apart from who they take and what happens when the controller is down, the two are the same webhook.
    const rest = (w: Webhook) => ({ ...w, name: undefined, objectSelector: undefined, failurePolicy: undefined });
    expect(rest(fail)).toEqual(rest(ignore));
  });

  it('excludes mirror pods with a CEL match condition', () => {
    for (const name of ['pods.nemutator.io', 'secrets-required.pods.nemutator.io']) {
      const pods = webhooks().find((w) => w.name === name)!;
      expect(pods.matchConditions, name).toEqual([
        { name: 'exclude-mirror-pods', expression: "!has(object.metadata.annotations) || !('kubernetes.io/config.mirror' in object.metadata.annotations)" },
      ]);
    }
  });

  it('runs two hardened controller replicas behind a PodDisruptionBudget', () => {
    const d = find<Workload>('Deployment', 'nemutator-controller', 'nemutator');
    expect(d.spec.replicas).toBe(2);
    const pdb = find('PodDisruptionBudget', 'nemutator-controller', 'nemutator').spec as { minAvailable: number; selector: Selector };
    expect(pdb.minAvailable).toBe(1);
    expect(selects(pdb.selector, d.spec.template.metadata.labels)).toBe(true);

    const pod = d.spec.template.spec;
    expect(pod.serviceAccountName).toBe('nemutator-controller');
    expect(pod.priorityClassName).toBeUndefined();
    expect(pod.topologySpreadConstraints?.map((t) => t.topologyKey)).toContain('kubernetes.io/hostname');
    expect(pod.securityContext?.seccompProfile?.type).toBe('RuntimeDefault');
    const c = containerOf(d, 'controller');
    expect(c.image).toBe('ghcr.io/nemutator/controller:0.1.0');
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'webhook', scheme: 'HTTPS' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'webhook', scheme: 'HTTPS' });
    expect(c.resources).toEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
    expect(c.securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.securityContext?.capabilities?.add).toBeUndefined();

    const env = envOf(c);
    expect(env.get('NEMUTATOR_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    expect(env.get('NEMUTATOR_POD_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.get('NEMUTATOR_WEBHOOK_CONFIG_NAME')?.value).toBe('nemutator');
    expect(env.get('NEMUTATOR_SERVICE_NAME')?.value).toBe('nemutator-controller');
    expect(env.get('NEMUTATOR_STATE_DIR')?.value).toBe('/var/lib/nemutator');
    for (const [name, key] of [['NEMUTATOR_REDIS_URL', 'redisUrl'], ['NEMUTATOR_PROMETHEUS_URL', 'prometheusUrl'], ['NEMUTATOR_REDIS_SENTINELS', 'redisSentinels'], ['NEMUTATOR_REDIS_MASTER_NAME', 'redisMasterName'], ['NEMUTATOR_REDIS_WAIT_REPLICAS', 'redisWaitReplicas'], ['NEMUTATOR_REDIS_WAIT_TIMEOUT', 'redisWaitTimeout']] as const) {
      expect(env.get(name)?.valueFrom?.configMapKeyRef).toEqual({ name: 'nemutator-config', key, optional: true });
    }
    // Redis passwords only ever from a Secret, never from the ConfigMap.
    for (const [name, key] of [['NEMUTATOR_REDIS_PASSWORD', 'password'], ['NEMUTATOR_REDIS_SENTINEL_PASSWORD', 'sentinelPassword']] as const) {
      expect(env.get(name)?.valueFrom?.secretKeyRef).toEqual({ name: 'nemutator-redis', key, optional: true });
    }
    expect(c.volumeMounts?.find((m) => m.mountPath === '/var/lib/nemutator')).toBeDefined();
  });

  it('caps the controller V8 heap well inside its memory limit (V8 sizes it from the node, not the container)', () => {
    const c = containerOf(find<Workload>('Deployment', 'nemutator-controller', 'nemutator'), 'controller');
    const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(envOf(c).get('NODE_OPTIONS')?.value ?? '')?.[1]);
    const limit = /^(\d+)Mi$/.exec(String(c.resources?.limits?.memory));
    expect(heapMiB, 'NODE_OPTIONS --max-old-space-size').toBeGreaterThan(0);
    expect(limit, 'memory limit in Mi').not.toBeNull();
    // bench/fleet: ~100 MiB of the controller's peak is not heap (code, TLS, sockets)
    expect(heapMiB).toBeLessThanOrEqual(Number(limit![1]) * 0.7);
    expect(heapMiB).toBeGreaterThanOrEqual(Number(limit![1]) * 0.4);
  });

  it('gives the agent host PIDs and, for the CSI plugin, privileged mode (every capability)', () => {
    const ds = find<Workload>('DaemonSet', 'nemutator-agent', 'nemutator');
    const pod = ds.spec.template.spec;
    expect(pod.hostPID).toBe(true);
    expect(pod.serviceAccountName).toBe('nemutator-agent');
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds.spec.updateStrategy).toEqual({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } });

    const c = containerOf(ds, 'agent');
    expect(c.image).toBe('ghcr.io/nemutator/agent:0.1.0');
    // Bidirectional mount propagation is refused by the API server unless privileged; a
    // capability list would be ignored by the runtime in privileged mode, so none is given.
    expect(c.securityContext).toMatchObject({ privileged: true, runAsUser: 0, readOnlyRootFilesystem: true });
    expect(c.securityContext?.capabilities).toBeUndefined();
    expect(c.securityContext?.allowPrivilegeEscalation).toBeUndefined(); // the API server refuses false together with privileged
    expect(c.resources).toEqual({ requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } });

    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const mountOf = (path: string) => {
      const m = c.volumeMounts?.find((x) => x.mountPath === path);
      if (!m) throw new Error(`agent has no mount at ${path}`);
      return { ...m, volume: volumes.get(m.name)! };
    };
    expect(mountOf('/host/sys/fs/cgroup')).toMatchObject({ readOnly: true, volume: { hostPath: { path: '/sys/fs/cgroup' } } });
    expect(mountOf('/sys/kernel/tracing')).toMatchObject({ readOnly: true, volume: { hostPath: { path: '/sys/kernel/tracing' } } });
    expect(mountOf('/sys/kernel/debug')).toMatchObject({ readOnly: true, volume: { hostPath: { path: '/sys/kernel/debug' } } });
    expect(mountOf('/run/nemutator').volume.hostPath).toEqual({ path: '/run/nemutator', type: 'DirectoryOrCreate' });
    expect(mountOf('/var/run/nemutator/ca').volume.configMap).toMatchObject({ name: 'nemutator-ca', optional: true, items: [{ key: 'ca.crt', path: 'ca.crt' }] });
    expect(mountOf('/var/run/secrets/nemutator').volume.projected?.sources).toEqual([
      { serviceAccountToken: { audience: 'nemutator', expirationSeconds: 3600, path: 'token' } },
    ]);

    const env = envOf(c);
    expect(env.get('NEMUTATOR_NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');
    expect(Object.fromEntries([...env].filter(([, e]) => e.value !== undefined).map(([k, e]) => [k, e.value]))).toEqual({
      NEMUTATOR_CONTROLLER_URL: 'wss://nemutator-controller.nemutator.svc:8444/fleet',
      NEMUTATOR_CA_FILE: '/var/run/nemutator/ca/ca.crt',
      NEMUTATOR_TOKEN_FILE: '/var/run/secrets/nemutator/token',
      NEMUTATOR_CGROUP_ROOT: '/host/sys/fs/cgroup',
      NEMUTATOR_PROC_ROOT: '/proc',
      NEMUTATOR_SOCKET_PATH: '/run/nemutator/agent.sock',
      NEMUTATOR_METRICS_PORT: '9101',
      NEMUTATOR_CSI_SOCKET: '/csi/csi.sock',
      NEMUTATOR_CSI_KUBELET_DIR: '/var/lib/kubelet',
    });
  });

  it('ships the CSI driver csi.nemutator.io: the CSIDriver object, the registrar sidecar and the kubelet directories', () => {
    expect(find('CSIDriver', 'csi.nemutator.io').spec).toEqual({
      attachRequired: false,
      podInfoOnMount: true,
      volumeLifecycleModes: ['Ephemeral'],
      fsGroupPolicy: 'None',
      requiresRepublish: false,
      storageCapacity: false,
    });
    const ds = find<Workload>('DaemonSet', 'nemutator-agent', 'nemutator');
    const pod = ds.spec.template.spec;
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const mountIn = (c: Container, path: string) => {
      const m = c.volumeMounts?.find((x) => x.mountPath === path);
      if (!m) throw new Error(`${c.name} has no mount at ${path}`);
      return { ...m, volume: volumes.get(m.name)! };
    };
    const agent = containerOf(ds, 'agent');
    const socket = envOf(agent).get('NEMUTATOR_CSI_SOCKET')!.value!;
    // The agent listens in the plugin directory kubelet dials, named after the driver.
    expect(mountIn(agent, '/csi').volume.hostPath).toEqual({ path: '/var/lib/kubelet/plugins/csi.nemutator.io', type: 'DirectoryOrCreate' });
    expect(socket).toBe('/csi/csi.sock');
    // Target paths are host paths: the pods directory at the same path, its mounts propagated to the host.
    expect(mountIn(agent, '/var/lib/kubelet/pods')).toMatchObject({ mountPropagation: 'Bidirectional', volume: { hostPath: { path: '/var/lib/kubelet/pods', type: 'Directory' } } });
    expect(agent.volumeMounts?.filter((m) => m.mountPropagation === 'Bidirectional').map((m) => m.mountPath)).toEqual(['/var/lib/kubelet/pods']);

    const registrar = containerOf(ds, 'csi-node-driver-registrar');
    expect(registrar.image).toMatch(/^registry\.k8s\.io\/sig-storage\/csi-node-driver-registrar:v\d+\.\d+\.\d+$/);
    expect(registrar.args).toEqual(
      expect.arrayContaining(['--csi-address=/csi/csi.sock', '--kubelet-registration-path=/var/lib/kubelet/plugins/csi.nemutator.io/csi.sock']),
    );
    expect(mountIn(registrar, '/csi').name).toBe(mountIn(agent, '/csi').name);
    expect(mountIn(registrar, '/registration').volume.hostPath).toEqual({ path: '/var/lib/kubelet/plugins_registry', type: 'Directory' });
    expect(registrar.securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(registrar.securityContext?.capabilities?.add).toBeUndefined();
    expect(registrar.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'registrar' });
    expect(registrar.resources?.limits?.memory).toBeDefined();
  });

  it('grants least privilege: no wildcards, no secret but its own TLS Secret, the webhook configuration by name', () => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    for (const r of roles) {
      for (const rule of r.rules as Rule[]) {
        const id = `${r.kind}/${r.metadata.name}`;
        expect(rule.verbs, id).not.toContain('*');
        expect(rule.resources, id).not.toContain('*');
        expect(rule.apiGroups, id).not.toContain('*');
        // The only Secrets anyone may read are the controller's own: its TLS Secret and the scheduler
        // extender's client certificate it issues, by name, in its namespace.
        if (rule.resources?.includes('secrets')) {
          expect(id).toBe('Role/nemutator-controller');
          const named = rule.verbs.includes('get') || rule.verbs.includes('list') || rule.verbs.includes('watch') ? rule.resourceNames : ['nemutator-webhook-tls'];
          expect([['nemutator-webhook-tls'], ['nemutator-scheduler-client']], id).toContainEqual(named);
          expect(rule.verbs, id).not.toContain('list');
          expect(rule.verbs, id).not.toContain('watch');
        }
      }
    }
    const rulesOf = (kind: string, name: string): Rule[] => find(kind, name).rules as Rule[];
    const grants = (rules: Rule[], group: string, resource: string, verb: string): Rule[] =>
      rules.filter((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource) && r.verbs.includes(verb));

    const controller = rulesOf('ClusterRole', 'nemutator-controller');
    const webhookRules = controller.filter((r) => r.resources?.includes('mutatingwebhookconfigurations'));
    expect(webhookRules).toEqual([{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['nemutator'], verbs: ['get', 'patch'] }]);
    expect(grants(controller, 'apps', 'deployments', 'patch')).toHaveLength(1);
    // Pod writes come only with the features that need them (manifests/components).
    for (const [resource, verb] of [['pods', 'patch'], ['pods', 'update'], ['pods', 'delete'], ['pods/eviction', 'create'], ['pods/resize', 'patch']] as const) {
      expect(grants(controller, '', resource, verb), `${verb} ${resource} in the base`).toHaveLength(0);
    }
    expect(grants(controller, 'authorization.k8s.io', 'subjectaccessreviews', 'create')).toHaveLength(1);
    for (const r of ['replicasets', 'deployments', 'statefulsets', 'daemonsets']) expect(grants(controller, 'apps', r, 'watch'), r).toHaveLength(1);
    expect(grants(controller, 'apps', 'replicasets', 'patch')).toHaveLength(0);

    const role = rulesOf('Role', 'nemutator-controller');
    expect(grants(role, '', 'configmaps', 'update')).toEqual([{ apiGroups: [''], resources: ['configmaps'], resourceNames: ['nemutator-ca'], verbs: ['get', 'update'] }]);
    expect(grants(role, 'coordination.k8s.io', 'leases', 'update')).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['nemutator-controller'], verbs: ['get', 'update'] }]);
    expect(grants(role, '', 'secrets', 'get')).toEqual([
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['nemutator-webhook-tls'], verbs: ['get', 'update'] },
      { apiGroups: [''], resources: ['secrets'], resourceNames: ['nemutator-scheduler-client'], verbs: ['get', 'update'] },
    ]);

    const agent = rulesOf('ClusterRole', 'nemutator-agent');
    expect(agent.flatMap((r) => r.verbs.flatMap((v) => r.resources!.map((res) => `${v} ${res}`))).sort()).toEqual(
      ['create subjectaccessreviews', 'create tokenreviews', 'get nodes', 'get pods', 'list pods', 'watch pods'].sort(),
    );
    // For the scrapers of the agents' /metrics; bound to no one (docs/agent-metrics.md).
    expect(rulesOf('ClusterRole', 'nemutator-metrics-reader')).toEqual([{ apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] }]);
    expect(objects.filter((o) => (o.roleRef as { name?: string } | undefined)?.name === 'nemutator-metrics-reader')).toEqual([]);

    expect(rulesOf('ClusterRole', 'nemutator-profiler')).toEqual([{ apiGroups: ['nemutator.io'], resources: ['profiles'], verbs: ['create', 'get', 'list'] }]);
    expect(rulesOf('ClusterRole', 'nemutator-secrets-rotator')).toEqual([
      { apiGroups: ['nemutator.io'], resources: ['secretrotations'], verbs: ['create'] },
      { apiGroups: ['nemutator.io'], resources: ['secretstatus'], verbs: ['list'] },
    ]);
  });

  it('ships each pod-writing right in the component of the feature that needs it', () => {
    // scheduler writes no pod: its objects are the second kube-scheduler's (test/scheduler/neighbours.test.ts).
    expect(componentNames()).toEqual(['neighbour-labels', 'resize', 'rollback-pods', 'scheduler']);
    const base = new Set(objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`));
    const controllerRules = (rendered: KubeObject[]) =>
      rendered
        .filter((o) => o.kind === 'ClusterRole' && !base.has(`ClusterRole//${o.metadata.name}`))
        .flatMap((o) => (o.rules as Rule[]).flatMap((r) => r.resources!.flatMap((res) => r.verbs.map((v) => `${v} ${res}`))))
        .sort();
    const resize = render(['resize']);
    expect(controllerRules(resize)).toEqual(['create pods/eviction', 'patch pods', 'patch pods/resize']);
    // The switch comes with the rights: enabling the component turns season-flip resizing on.
    const env = envOf(containerOf(resize.find((o) => o.kind === 'Deployment' && o.metadata.name === 'nemutator-controller') as Workload, 'controller'));
    expect(env.get('NEMUTATOR_RESIZE_ON_SEASON_FLIP')?.value).toBe('on');
    expect(envOf(containerOf(find<Workload>('Deployment', 'nemutator-controller'), 'controller')).has('NEMUTATOR_RESIZE_ON_SEASON_FLIP')).toBe(false);

    const rollback = render(['rollback-pods']);
    expect(controllerRules(rollback)).toEqual(['create pods/eviction']);

    const labels = render(['neighbour-labels']);
    expect(controllerRules(labels)).toEqual(['get daemonsets', 'get statefulsets', 'patch daemonsets', 'patch pods', 'patch statefulsets']);
    const labelsEnv = envOf(containerOf(labels.find((o) => o.kind === 'Deployment' && o.metadata.name === 'nemutator-controller') as Workload, 'controller'));
    expect(labelsEnv.get('NEMUTATOR_NEIGHBOUR_LABELS')?.value).toBe('true');
    // A component adds its ClusterRole and the binding to the controller's service account, nothing else.
    for (const [name, rendered] of [
      ['resize', resize],
      ['rollback-pods', rollback],
      ['neighbour-labels', labels],
    ] as const) {
      const added = rendered.filter((o) => !base.has(`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`)).map((o) => `${o.kind}/${o.metadata.name}`).sort();
      expect(added, name).toEqual([`ClusterRole/nemutator-controller-${name}`, `ClusterRoleBinding/nemutator-controller-${name}`]);
      const binding = rendered.find((o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === `nemutator-controller-${name}`)!;
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'nemutator-controller', namespace: 'nemutator' }]);
    }
  });
});
