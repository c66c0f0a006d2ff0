// Pod Security Admission in the Kubernetes double, driven by the real kubectl 1.32 and
// @kubernetes/client-node: namespace labels choose the level, pods are refused with the real
// server's message (wording and order of pod-security-admission's checks), workloads are
// only warned and their ReplicaSet's pod creations fail with FailedCreate.
import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { until } from '../harness/wait.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let k: KubectlRunner;
let core: CoreV1Api;
let apps: AppsV1Api;

const RESTRICTED_SC = {
  runAsNonRoot: true,
  runAsUser: 65532,
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
  readOnlyRootFilesystem: true,
};

const pod = (ns: string, name: string, spec: Obj = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns },
  spec: { containers: [{ name: 'app', image: 'nginx:1.27' }], ...spec },
});

const namespace = (name: string, labels: Record<string, string>): Obj => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } });

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  await k(['create', '-f', '-'], { stdin: namespace('strict', { 'pod-security.kubernetes.io/enforce': 'restricted' }) });
  await k(['create', '-f', '-'], {
    stdin: namespace('base', { 'pod-security.kubernetes.io/enforce': 'baseline', 'pod-security.kubernetes.io/warn': 'restricted' }),
  });
  await k(['create', '-f', '-'], {
    stdin: namespace('pinned', { 'pod-security.kubernetes.io/enforce': 'restricted', 'pod-security.kubernetes.io/enforce-version': 'v1.24' }),
  });
  await k(['create', '-f', '-'], { stdin: namespace('open', {}) });
  const kc = new KubeConfig();
  kc.loadFromFile(kube.kubeconfigPath);
  core = kc.makeApiClient(CoreV1Api);
  apps = kc.makeApiClient(AppsV1Api);
});
afterAll(async () => {
  await kube?.stop();
});

describe('Pod Security Admission in the Kubernetes double', () => {
  it('kubectl: a pod without a securityContext is refused in a restricted namespace with the real message', async () => {
    const r = await k.result(['create', '-f', '-'], { stdin: pod('strict', 'bare') });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'Error from server (Forbidden): error when creating "STDIN": pods "bare" is forbidden: violates PodSecurity "restricted:latest": ' +
        'allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), ' +
        'runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), ' +
        'seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")',
    );
    expect(kube.get('pods', 'strict', 'bare')).toBeUndefined();
    // the pinned version is printed as labelled
    const pinned = await k.result(['create', '-f', '-'], { stdin: pod('pinned', 'bare') });
    expect(pinned.stderr).toContain('pods "bare" is forbidden: violates PodSecurity "restricted:v1.24": allowPrivilegeEscalation != false');
  });

  it('kubectl: baseline checks come first, in check-ID order, across init and app containers', async () => {
    const spec = {
      hostNetwork: true,
      hostPID: true,
      initContainers: [{ name: 'init', image: 'busybox', securityContext: { privileged: true, capabilities: { add: ['SYS_ADMIN', 'NET_ADMIN'] } } }],
      containers: [
        {
          name: 'app',
          image: 'nginx',
          ports: [{ containerPort: 80, hostPort: 8080 }],
          securityContext: { privileged: true, runAsUser: 0, seccompProfile: { type: 'Unconfined' } },
        },
      ],
      volumes: [
        { name: 'host', hostPath: { path: '/run' } },
        { name: 'nfs', nfs: { server: 'x', path: '/' } },
      ],
    };
    const r = await k.result(['create', '-f', '-'], { stdin: pod('strict', 'loud', spec) });
    expect(r.stderr).toContain(
      'pods "loud" is forbidden: violates PodSecurity "restricted:latest": ' +
        'host namespaces (hostNetwork=true, hostPID=true), ' +
        'hostPort (container "app" uses hostPort 8080), ' +
        'privileged (containers "init", "app" must not set securityContext.privileged=true), ' +
        'allowPrivilegeEscalation != false (containers "init", "app" must set securityContext.allowPrivilegeEscalation=false), ' +
        'unrestricted capabilities (containers "init", "app" must set securityContext.capabilities.drop=["ALL"]; container "init" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), ' +
        'restricted volume types (volumes "host", "nfs" use restricted volume types "hostPath", "nfs"), ' +
        'runAsNonRoot != true (pod or containers "init", "app" must set securityContext.runAsNonRoot=true), ' +
        'runAsUser=0 (container "app" must not set runAsUser=0), ' +
        'seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")',
    );
    const base = await k.result(['create', '-f', '-'], { stdin: pod('base', 'loud', spec) });
    expect(base.stderr).toContain(
      'pods "loud" is forbidden: violates PodSecurity "baseline:latest": ' +
        'non-default capabilities (container "init" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add), ' +
        'host namespaces (hostNetwork=true, hostPID=true), ' +
        'hostPath volumes (volume "host"), ' +
        'hostPort (container "app" uses hostPort 8080), ' +
        'privileged (containers "init", "app" must not set securityContext.privileged=true), ' +
        'seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined")',
    );
  });

  it('kubectl: a restricted pod with csi, emptyDir and projected volumes is admitted; a pod-level securityContext covers every container', async () => {
    const compliant = pod('strict', 'good', {
      initContainers: [{ name: 'init', image: 'busybox', securityContext: RESTRICTED_SC }],
      containers: [
        { name: 'app', image: 'nginx', securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] } } },
      ],
      securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
      volumes: [
        { name: 'sock', csi: { driver: 'csi.nemutator.io', readOnly: true } },
        { name: 'bin', emptyDir: { medium: 'Memory' } },
        { name: 'token', projected: { sources: [{ serviceAccountToken: { audience: 'vault', path: 'token' } }] } },
      ],
    });
    const r = await k.result(['create', '-f', '-'], { stdin: compliant });
    expect(r).toMatchObject({ code: 0, stdout: 'pod/good created\n', stderr: '' });
    // baseline enforced, restricted warned: admitted with kubectl's "Warning:" line
    const warned = await k.result(['create', '-f', '-'], { stdin: pod('base', 'plain') });
    expect(warned.code).toBe(0);
    expect(warned.stderr).toContain('Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app"');
    // no labels: privileged, nothing said
    expect(await k.result(['create', '-f', '-'], { stdin: pod('open', 'host', { hostNetwork: true }) })).toMatchObject({ code: 0, stderr: '' });
  });

  it('kubectl: a Deployment is only warned; its ReplicaSet fails with FailedCreate on the event and the conditions', async () => {
    const deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web', namespace: 'strict' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'web' } },
        template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'nginx' }] } },
      },
    };
    const r = await k.result(['create', '-f', '-'], { stdin: deployment });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('deployment.apps/web created\n');
    expect(r.stderr).toContain(
      'Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false)',
    );
    const events = await until('a FailedCreate event', async () => {
      const list = JSON.parse(await k(['-n', 'strict', 'get', 'events', '--field-selector', 'reason=FailedCreate', '-o', 'json'])) as Obj;
      return list.items.length > 0 ? (list.items as Obj[]) : undefined;
    });
    expect(events[0]).toMatchObject({
      type: 'Warning',
      reason: 'FailedCreate',
      source: { component: 'replicaset-controller' },
      involvedObject: { kind: 'ReplicaSet' },
    });
    expect(events[0]!.message).toMatch(
      /^Error creating: pods "web-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/,
    );
    const rs = (JSON.parse(await k(['-n', 'strict', 'get', 'replicasets', '-o', 'json'])) as Obj).items[0] as Obj;
    expect(rs.status.conditions[0]).toMatchObject({ type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate' });
    await until("the Deployment's ReplicaFailure condition", async () =>
      ((JSON.parse(await k(['-n', 'strict', 'get', 'deployment', 'web', '-o', 'json'])) as Obj).status?.conditions ?? []).find(
        (c: Obj) => c.type === 'ReplicaFailure',
      ),
    );
    expect(kube.list('pods', 'strict').filter((p) => p.metadata.name?.startsWith('web-'))).toEqual([]);
  });

  it('@kubernetes/client-node: the refusal is a 403 Forbidden Status naming the pod', async () => {
    const err = await core.createNamespacedPod({ namespace: 'strict', body: pod('strict', 'client') as never }).then(
      () => undefined,
      (e: { code?: number; body?: string }) => e,
    );
    expect(err?.code).toBe(403);
    const status = JSON.parse(err!.body!) as Obj;
    expect(status).toMatchObject({ kind: 'Status', status: 'Failure', reason: 'Forbidden', code: 403, details: { name: 'client', kind: 'pods' } });
    expect(status.message).toMatch(/^pods "client" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
    // a workload is created (warnings are headers, not errors)
    const created = await apps.createNamespacedDeployment({
      namespace: 'strict',
      body: {
        metadata: { name: 'client' },
        spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
      },
    });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
  });
});
