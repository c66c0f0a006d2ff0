// Secrets in a namespace that enforces Pod Security "restricted", end to end through the
// Kubernetes API server double (which runs the PodSecurity admission plugin after the
// mutating webhooks, as kube-apiserver does) and the real kubectl: the default injection —
// an inline csi volume for the agent's socket and a restricted init container — lets a
// Deployment's ReplicaSet create its pods; the hostPath injection is refused there, and the
// webhook's warning names the field before the ReplicaSet finds out.
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../common/src/log.ts';
import { startController, type RunningController } from '../../controller/src/app.ts';
import { controllerFeatures } from '../../controller/src/features.ts';
import { SharedTokenAgentAuthenticator } from '../../controller/src/fleet/auth.ts';
import { localAuthorizer } from '../../controller/src/server/access.ts';
import { StaticTokenAuthenticator } from '../../controller/src/server/auth.ts';
import { testControllerConfig, webhookConfiguration } from '../harness/controller.ts';
import { startKubeDouble, type KubeDouble } from '../harness/kube/index.ts';
import { kubectlFor, type KubectlRunner } from '../harness/kube/kubectl.ts';
import { evaluatePodSpec } from '../harness/kube/podsecurity.ts';
import { until } from '../harness/wait.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const NS = 'shop';
let kube: KubeDouble;
let k: KubectlRunner;
const controllers: Record<'csi' | 'hostPath', RunningController | undefined> = { csi: undefined, hostPath: undefined };

async function start(socket: 'csi' | 'hostPath'): Promise<RunningController> {
  const config = testControllerConfig({ kubeconfig: kube.kubeconfigPath, dictionary: 'embedded', initImage: 'registry.local/nemutator/init:test', secretsSocketVolume: socket });
  return startController(config, { log: silentLogger, mode: 'cluster', apiAuth: new StaticTokenAuthenticator('t'), authorizer: localAuthorizer, agentAuth: new SharedTokenAgentAuthenticator('x'), ...controllerFeatures() });
}

/** The application's own part is restricted-compliant: the pod-level securityContext and its container's. */
const deployment = (name: string): Obj => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace: NS },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name }, annotations: { 'nemutator.io/secret-file.ca.pem': 'vault:secret/app/tls#ca' } },
      spec: {
        serviceAccountName: 'shop-api',
        securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
        containers: [
          {
            name: 'app',
            image: 'registry.local/shop/api:1',
            command: ['/bin/server'],
            env: [{ name: 'DB_PASSWORD', value: 'vault:secret/app/db#password' }],
            securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: true },
          },
        ],
      },
    },
  },
});

const failedCreates = async (): Promise<Obj[]> => (JSON.parse(await k(['-n', NS, 'get', 'events', '--field-selector', 'reason=FailedCreate', '-o', 'json'])) as Obj).items;
const podsOf = (name: string): Obj[] => kube.list('pods', NS).filter((p) => String(p.metadata.name).startsWith(`${name}-`));

beforeAll(async () => {
  kube = await startKubeDouble();
  k = kubectlFor(kube.kubeconfigPath);
  await k(['create', '-f', '-'], { stdin: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  await k(['-n', NS, 'create', 'serviceaccount', 'shop-api']);
  controllers.csi = await start('csi');
  controllers.hostPath = await start('hostPath');
}, 60_000);
afterAll(async () => {
  for (const c of Object.values(controllers)) {
    await c?.stop();
    if (c) rmSync(c.config.stateDir, { recursive: true, force: true });
  }
  await kube?.stop();
});

describe('secrets in a namespace enforcing Pod Security "restricted"', () => {
  it('the default injection is admitted, the ReplicaSet creates its pod, and the stored pod passes restricted', async () => {
    await k(['apply', '-f', '-'], { stdin: webhookConfiguration(controllers.csi!) });
    const r = await k.result(['create', '-f', '-'], { stdin: deployment('api') });
    expect(r).toMatchObject({ code: 0, stdout: 'deployment.apps/api created\n' });
    expect(r.stderr).not.toContain('PodSecurity'); // neither the API server nor the webhook has anything to say
    const [pod] = await until('the ReplicaSet’s pod', () => (podsOf('api').length > 0 ? podsOf('api') : undefined));
    const spec = pod!.spec as Obj;
    expect(spec.volumes.find((v: Obj) => v.name === 'nemutator-socket')).toEqual({ name: 'nemutator-socket', csi: { driver: 'csi.nemutator.io', readOnly: true } });
    expect(spec.initContainers[0]).toMatchObject({ name: 'nemutator-init', securityContext: { runAsNonRoot: true, runAsUser: 65532, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' } } });
    expect(spec.containers[0].command).toEqual(['/nemutator/bin/nemu-exec', '--', '/bin/server']);
    expect(spec.containers[0].env.map((e: Obj) => e.name)).not.toContain('DB_PASSWORD');
    expect(evaluatePodSpec('restricted', spec)).toBeUndefined();
    await until('the pod running', () => (kube.get('pods', NS, pod!.metadata.name as string)?.['status'] as Obj | undefined)?.phase === 'Running');
    await kube.settle();
    expect(await failedCreates()).toEqual([]);
  });

  it('with secretsSocketVolume: hostPath the webhook names the field, and the API server refuses the pods', async () => {
    await k(['apply', '-f', '-'], { stdin: webhookConfiguration(controllers.hostPath!) });
    // The controller learns namespace labels from its informer: wait (dry run, no side effects) until it knows shop's.
    const bare = { ...deployment('bare').spec.template, apiVersion: 'v1', kind: 'Pod', metadata: { name: 'bare', namespace: NS, annotations: deployment('bare').spec.template.metadata.annotations } };
    const refused = await until('the webhook’s Pod Security warning', async () => {
      const r = await k.result(['create', '--dry-run=server', '-f', '-'], { stdin: bare });
      return r.stderr.includes('Warning: nemutator: namespace shop') ? r : undefined;
    });
    expect(refused.code).toBe(1);
    const field = 'injected volume "nemutator-socket" uses hostPath (spec.volumes[1].hostPath); set secretsSocketVolume: csi'; // [0] is the service account's kube-api-access volume
    expect(refused.stderr).toContain(`Warning: nemutator: namespace shop enforces Pod Security "restricted": ${field}; the API server will refuse this pod`);
    expect(refused.stderr).toContain(
      'Error from server (Forbidden): error when creating "STDIN": pods "bare" is forbidden: violates PodSecurity "restricted:latest": restricted volume types (volume "nemutator-socket" uses restricted volume type "hostPath")',
    );

    const r = await k.result(['create', '-f', '-'], { stdin: deployment('legacy') });
    expect(r.code).toBe(0); // a Deployment is only warned, by both
    expect(r.stderr).toContain(`Warning: nemutator: namespace shop enforces Pod Security "restricted": injected volume "nemutator-socket" uses hostPath (spec.template.spec.volumes[0].hostPath)`);
    expect(r.stderr).toContain('Warning: would violate PodSecurity "restricted:latest": restricted volume types (volume "nemutator-socket" uses restricted volume type "hostPath")');
    const [event] = await until('FailedCreate', async () => ((await failedCreates()).length > 0 ? failedCreates() : undefined));
    expect(event!.involvedObject.name).toMatch(/^legacy-/);
    expect(event!.message).toMatch(/^Error creating: pods "legacy-[a-z0-9]+-[a-z0-9]{5}" is forbidden: violates PodSecurity "restricted:latest": restricted volume types \(volume "nemutator-socket" uses restricted volume type "hostPath"\)$/);
    expect(podsOf('legacy')).toEqual([]);
  });
});
