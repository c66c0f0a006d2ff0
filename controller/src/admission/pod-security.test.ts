import { describe, expect, it } from 'vitest';

import { DEFAULT_CHAIN, runChain } from '../mutators/chain.ts';
import { SECRETS_DEFAULTS, withSecretsOptions } from '../mutators/secrets.ts';
import type { KubeObject, WorkloadKind } from '../mutators/types.ts';
import { enforcedLevel, podSecurityWarnings } from './pod-security.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const podSpec = () => ({ containers: [{ name: 'app', image: 'x', command: ['/app'], env: [{ name: 'DB', value: 'vault:secret/app/db#password' }] }] });
function mutated(socket: 'csi' | 'hostPath', kind: WorkloadKind = 'Pod'): KubeObject {
  const object: KubeObject =
    kind === 'Pod'
      ? { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'shop' }, spec: podSpec() }
      : { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd', namespace: 'shop' }, spec: { template: { metadata: {}, spec: podSpec() } } };
  const chain = withSecretsOptions(DEFAULT_CHAIN, { ...SECRETS_DEFAULTS, secretsSocketVolume: socket });
  return runChain(chain, object, { kind, namespace: 'shop', operation: 'CREATE', dictionary: new Map(), recommendations: [] }).object;
}

describe('Pod Security warnings for what nemutator injects', () => {
  it('reads the enforce label as the API server does', () => {
    expect(enforcedLevel(undefined)).toBe('privileged');
    expect(enforcedLevel({ 'pod-security.kubernetes.io/enforce': 'baseline' })).toBe('baseline');
    expect(enforcedLevel({ 'pod-security.kubernetes.io/enforce': 'strict' })).toBe('restricted'); // fails closed
  });

  it('the default injection (csi socket, restricted init container) passes restricted: no warning', () => {
    expect(podSecurityWarnings(mutated('csi'), 'Pod', 'shop', 'restricted')).toEqual([]);
    expect(podSecurityWarnings(mutated('csi', 'Deployment'), 'Deployment', 'shop', 'restricted')).toEqual([]);
  });

  it('a hostPath socket names the level, the field and the fix, for a Pod and a Deployment', () => {
    expect(podSecurityWarnings(mutated('hostPath'), 'Pod', 'shop', 'baseline')).toEqual([
      'nemutator: namespace shop enforces Pod Security "baseline": injected volume "nemutator-socket" uses hostPath (spec.volumes[0].hostPath); set secretsSocketVolume: csi; the API server will refuse this pod',
    ]);
    expect(podSecurityWarnings(mutated('hostPath', 'Deployment'), 'Deployment', 'shop', 'restricted')).toEqual([
      `nemutator: namespace shop enforces Pod Security "restricted": injected volume "nemutator-socket" uses hostPath (spec.template.spec.volumes[0].hostPath); set secretsSocketVolume: csi; the API server will refuse this Deployment's pods (FailedCreate)`,
    ]);
    expect(podSecurityWarnings(mutated('hostPath'), 'Pod', 'shop', 'privileged')).toEqual([]);
  });

  it('an init container that lost its securityContext is named field by field at restricted', () => {
    const pod = mutated('csi') as Obj;
    delete pod.spec.initContainers[0].securityContext;
    const w = podSecurityWarnings(pod, 'Pod', 'shop', 'restricted');
    expect(w).toHaveLength(4);
    expect(w[0]).toContain('injected container "nemutator-init" must set spec.initContainers[0].securityContext.allowPrivilegeEscalation=false');
    expect(w.join('\n')).toContain('seccompProfile.type to RuntimeDefault or Localhost');
    // a pod-level securityContext covers runAsNonRoot and seccomp, as in the standard
    pod.spec.securityContext = { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } };
    expect(podSecurityWarnings(pod, 'Pod', 'shop', 'restricted')).toHaveLength(2);
    expect(podSecurityWarnings(pod, 'Pod', 'shop', 'baseline')).toEqual([]);
  });
});
