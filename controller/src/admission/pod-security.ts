/**
 * Would what nemutator injected pass the Pod Security level the pod's namespace enforces?
 * kube-apiserver's PodSecurity plugin judges the mutated pod after every mutating webhook; a
 * pod refused there (or a Deployment whose ReplicaSet then fails with FailedCreate) is a
 * surprise the webhook can name in advance: the level, the field, and what to change.
 *
 * Only the fields nemutator injects are judged — its volumes and its init container — with
 * the Pod Security Standards' rules for them (kubernetes.io/docs/concepts/security/pod-security-standards,
 * and pod-security-admission's policy/check_*.go): hostPath volumes (baseline), the restricted
 * volume allow-list, privileged, added capabilities, allowPrivilegeEscalation, runAsNonRoot,
 * runAsUser 0 and seccompProfile (restricted). The application's own containers are the
 * API server's business; its message names them.
 */
import { INIT_CONTAINER, VOLUMES } from '../mutators/secrets.ts';
import { isRecord, type KubeObject, type WorkloadKind } from '../mutators/types.ts';
import { podSpecOf } from '../mutators/workload.ts';

export type PodSecurityLevel = 'privileged' | 'baseline' | 'restricted';
const LEVELS: readonly PodSecurityLevel[] = ['privileged', 'baseline', 'restricted'];
export const ENFORCE_LABEL = 'pod-security.kubernetes.io/enforce';

/** The enforced level, as the API server reads the label: absent = privileged, an unknown value = restricted (it fails closed). */
export function enforcedLevel(labels: Readonly<Record<string, string>> | undefined): PodSecurityLevel {
  const v = labels?.[ENFORCE_LABEL];
  if (v === undefined) return 'privileged';
  return LEVELS.includes(v as PodSecurityLevel) ? (v as PodSecurityLevel) : 'restricted';
}

const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'image', 'persistentVolumeClaim', 'projected', 'secret'];
const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);
const OURS = new Set<string>(Object.values(VOLUMES));

/** What an injected volume breaks at `level`, with the field it is in. */
function volumeProblems(volumes: unknown[], base: string, level: PodSecurityLevel): string[] {
  const out: string[] = [];
  volumes.forEach((v, i) => {
    if (!isRecord(v) || typeof v.name !== 'string' || !OURS.has(v.name)) return;
    const kind = Object.keys(v).find((k) => k !== 'name') ?? 'unknown';
    const field = `${base}.volumes[${i}].${kind}`;
    if (kind === 'hostPath') out.push(`injected volume "${v.name}" uses hostPath (${field}); set secretsSocketVolume: csi`);
    else if (level === 'restricted' && !RESTRICTED_VOLUMES.includes(kind))
      out.push(`injected volume "${v.name}" uses ${kind} (${field}), which restricted does not allow`);
  });
  return out;
}

/** What the injected init container breaks at `level`, with the field. */
function initProblems(spec: Record<string, unknown>, base: string, level: PodSecurityLevel): string[] {
  const inits = Array.isArray(spec.initContainers) ? spec.initContainers : [];
  const i = inits.findIndex((c) => isRecord(c) && c.name === INIT_CONTAINER);
  if (i < 0) return [];
  const sc = isRecord(inits[i]) && isRecord(inits[i].securityContext) ? inits[i].securityContext : {};
  const pod = isRecord(spec.securityContext) ? spec.securityContext : {};
  const field = `${base}.initContainers[${i}].securityContext`;
  const out: string[] = [];
  const say = (what: string) => out.push(`injected container "${INIT_CONTAINER}" ${what}`);
  const caps = isRecord(sc.capabilities) ? sc.capabilities : {};
  const added = Array.isArray(caps.add) ? caps.add.map(String) : [];
  if (sc.privileged === true) say(`is privileged (${field}.privileged)`);
  if (added.some((c) => !BASELINE_CAPABILITIES.has(c))) say(`adds capabilities beyond the default set (${field}.capabilities.add)`);
  if (level !== 'restricted') return out;
  if (sc.allowPrivilegeEscalation !== false) say(`must set ${field}.allowPrivilegeEscalation=false`);
  if (!(Array.isArray(caps.drop) && caps.drop.includes('ALL')) || added.some((c) => c !== 'NET_BIND_SERVICE'))
    say(`must drop ALL capabilities and add none but NET_BIND_SERVICE (${field}.capabilities)`);
  if (sc.runAsNonRoot === false || (sc.runAsNonRoot !== true && pod.runAsNonRoot !== true)) say(`must set ${field}.runAsNonRoot=true`);
  if (sc.runAsUser === 0 || (sc.runAsUser === undefined && pod.runAsUser === 0)) say(`must not run as UID 0 (${field}.runAsUser)`);
  const seccomp = (p: unknown) => (isRecord(p) ? p.type : undefined);
  const type = seccomp(sc.seccompProfile) ?? seccomp(pod.seccompProfile);
  if (type !== 'RuntimeDefault' && type !== 'Localhost') say(`must set ${field}.seccompProfile.type to RuntimeDefault or Localhost`);
  return out;
}

/**
 * AdmissionReview warnings for what nemutator injected into `object` that the namespace's
 * enforced level refuses: one per problem, `nemutator: namespace <ns> enforces Pod Security
 * "<level>": <what> (<field>)…`. Empty at privileged, or when the injection passes.
 */
export function podSecurityWarnings(object: KubeObject, kind: WorkloadKind, namespace: string, level: PodSecurityLevel): string[] {
  if (level === 'privileged') return [];
  const spec = podSpecOf(object, kind);
  if (!spec) return [];
  const base = kind === 'Pod' ? 'spec' : 'spec.template.spec';
  const problems = [...volumeProblems(Array.isArray(spec.volumes) ? spec.volumes : [], base, level), ...initProblems(spec, base, level)];
  const then = kind === 'Pod' ? 'the API server will refuse this pod' : "the API server will refuse this Deployment's pods (FailedCreate)";
  return problems.map((p) => `nemutator: namespace ${namespace} enforces Pod Security "${level}": ${p}; ${then}`);
}
