// The PodSecurity admission plugin (k8s.io/pod-security-admission, built into
// kube-apiserver since 1.25 as a validating admission plugin): namespace labels
// `pod-security.kubernetes.io/enforce|warn[-version]` choose a Pod Security Standards level;
// pods that violate the enforce level are refused with 403 Forbidden, pod controllers
// (Deployment, ReplicaSet, …) only get a `would violate PodSecurity` warning.
//
// The checks, their order and their wording follow policy/check_*.go, checks.go and
// registry.go of kubernetes/pod-security-admission: baseline checks first, then restricted
// ones, each group sorted by check ID, a restricted check replacing the baseline check it
// overrides. Implemented: hostNamespaces, hostPathVolumes, hostPorts, privileged,
// capabilities_baseline, seccompProfile_baseline (fields), and restricted's
// allowPrivilegeEscalation, capabilities_restricted, restrictedVolumes, runAsNonRoot,
// runAsUser, seccompProfile_restricted. Not implemented (a pod using those fields is not
// judged on them): appArmorProfile, hostProbesAndHostLifecycle, procMount, seLinuxOptions,
// sysctls, windowsHostProcess, the seccomp alpha annotations. Every version label is
// evaluated with the newest checks of a 1.32 server (no user-namespace relaxation), but is
// printed as given, as the real server prints `restricted:v1.24`.
import type { KubeObject } from './store.ts';

export type Level = 'privileged' | 'baseline' | 'restricted';
export interface LevelVersion {
  level: Level;
  version: string;
}
export interface PodSecurityPolicy {
  enforce: LevelVersion;
  warn: LevelVersion;
}

const PREFIX = 'pod-security.kubernetes.io/';
const LEVELS: Level[] = ['privileged', 'baseline', 'restricted'];
const VERSION = /^(latest|v1\.(0|[1-9][0-9]*))$/;

export function formatLevelVersion(lv: LevelVersion): string {
  return `${lv.level}:${lv.version}`;
}

/** As api.PolicyToEvaluate with the default policy (privileged:latest everywhere). */
export function policyFromLabels(labels: Record<string, string> | undefined): PodSecurityPolicy {
  const l = labels ?? {};
  const version = (key: string): string => {
    const v = l[PREFIX + key];
    return v !== undefined && VERSION.test(v) ? v : 'latest';
  };
  const enforceText = l[`${PREFIX}enforce`];
  // An unknown enforce level fails closed (restricted), an unknown warn level fails open.
  const enforceLevel: Level = enforceText === undefined ? 'privileged' : LEVELS.includes(enforceText as Level) ? (enforceText as Level) : 'restricted';
  const enforce = { level: enforceLevel, version: version('enforce-version') };
  const warnText = l[`${PREFIX}warn`];
  let warn: LevelVersion = {
    level: warnText !== undefined && LEVELS.includes(warnText as Level) ? (warnText as Level) : 'privileged',
    version: version('warn-version'),
  };
  const hasValidEnforce = enforceText !== undefined && LEVELS.includes(enforceText as Level);
  // Warn defaults to the enforce level when enforce is stricter and warn is not set.
  if (warnText === undefined && hasValidEnforce && LEVELS.indexOf(enforce.level) > LEVELS.indexOf(warn.level)) {
    warn = { level: enforce.level, version: l[`${PREFIX}warn-version`] === undefined ? enforce.version : warn.version };
  }
  return { enforce, warn };
}

type Obj = Record<string, unknown>;
interface Container extends Obj {
  name?: string;
  securityContext?: Obj;
  ports?: Array<{ hostPort?: number }>;
}
interface CheckResult {
  reason: string;
  detail: string;
}
type Check = (spec: Obj) => CheckResult | undefined;

function joinQuote(items: string[]): string {
  return items.length === 0 ? '' : `"${items.join('", "')}"`;
}
function pluralize(singular: string, plural: string, n: number): string {
  return n === 1 ? singular : plural;
}
function containers(spec: Obj): Container[] {
  const list = (field: string): Container[] => (Array.isArray(spec[field]) ? (spec[field] as Container[]) : []);
  return [...list('initContainers'), ...list('containers'), ...list('ephemeralContainers')];
}
function sc(c: Container): Obj | undefined {
  return c.securityContext && typeof c.securityContext === 'object' ? c.securityContext : undefined;
}
function podSc(spec: Obj): Obj | undefined {
  const s = spec['securityContext'];
  return s && typeof s === 'object' ? (s as Obj) : undefined;
}
function isWindows(spec: Obj): boolean {
  return (spec['os'] as { name?: string } | undefined)?.name === 'windows';
}
function names(list: Container[]): string[] {
  return list.map((c) => String(c.name ?? ''));
}
function sortedUnique(items: Iterable<string>): string[] {
  return [...new Set(items)].sort();
}

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
const RESTRICTED_VOLUME_SOURCES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'image', 'persistentVolumeClaim', 'projected', 'secret'];
const OTHER_VOLUME_SOURCES = [
  'hostPath',
  'gcePersistentDisk',
  'awsElasticBlockStore',
  'gitRepo',
  'nfs',
  'iscsi',
  'glusterfs',
  'rbd',
  'flexVolume',
  'cinder',
  'cephfs',
  'flocker',
  'fc',
  'azureFile',
  'vsphereVolume',
  'quobyte',
  'azureDisk',
  'photonPersistentDisk',
  'portworxVolume',
  'scaleIO',
  'storageos',
];

function volumes(spec: Obj): Obj[] {
  return Array.isArray(spec['volumes']) ? (spec['volumes'] as Obj[]) : [];
}
const present = (v: unknown): boolean => v !== undefined && v !== null;

const hostNamespaces: Check = (spec) => {
  const used = (['hostNetwork', 'hostPID', 'hostIPC'] as const).filter((k) => spec[k] === true).map((k) => `${k}=true`);
  return used.length ? { reason: 'host namespaces', detail: used.join(', ') } : undefined;
};

const hostPathVolumes: Check = (spec) => {
  const bad = volumes(spec)
    .filter((v) => present(v['hostPath']))
    .map((v) => String(v['name']));
  return bad.length ? { reason: 'hostPath volumes', detail: `${pluralize('volume', 'volumes', bad.length)} ${joinQuote(bad)}` } : undefined;
};

const hostPorts: Check = (spec) => {
  const bad: string[] = [];
  const ports = new Set<string>();
  for (const c of containers(spec)) {
    const hp = (c.ports ?? []).map((p) => p.hostPort ?? 0).filter((p) => p !== 0);
    for (const p of hp) ports.add(String(p));
    if (hp.length) bad.push(String(c.name));
  }
  if (!bad.length) return undefined;
  const list = sortedUnique(ports);
  return {
    reason: 'hostPort',
    detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} ${pluralize('uses', 'use', bad.length)} ${pluralize('hostPort', 'hostPorts', list.length)} ${list.join(', ')}`,
  };
};

const privileged: Check = (spec) => {
  const bad = names(containers(spec).filter((c) => sc(c)?.['privileged'] === true));
  return bad.length
    ? { reason: 'privileged', detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must not set securityContext.privileged=true` }
    : undefined;
};

function capabilities(c: Container): { add: string[]; drop: string[] } | undefined {
  const caps = sc(c)?.['capabilities'] as { add?: string[]; drop?: string[] } | undefined | null;
  return caps ? { add: caps.add ?? [], drop: caps.drop ?? [] } : undefined;
}

const capabilitiesBaseline: Check = (spec) => {
  const bad: string[] = [];
  const caps = new Set<string>();
  for (const c of containers(spec)) {
    const extra = (capabilities(c)?.add ?? []).filter((a) => !BASELINE_CAPABILITIES.has(a));
    for (const a of extra) caps.add(a);
    if (extra.length) bad.push(String(c.name));
  }
  return bad.length
    ? {
        reason: 'non-default capabilities',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must not include ${joinQuote(sortedUnique(caps))} in securityContext.capabilities.add`,
      }
    : undefined;
};

/** seccompProfile on the pod and on containers: the baseline forbids Unconfined, restricted requires one of the two. */
function seccompCheck(requireSet: boolean): Check {
  return (spec) => {
    if (requireSet && isWindows(spec)) return undefined;
    const valid = (t: unknown): boolean => t === 'RuntimeDefault' || t === 'Localhost';
    const badSetters: string[] = [];
    const badValues = new Set<string>();
    const podProfile = podSc(spec)?.['seccompProfile'] as { type?: string } | undefined | null;
    let podSet = false;
    if (podProfile) {
      if (!valid(podProfile.type)) {
        badSetters.push('pod');
        badValues.add(String(podProfile.type ?? ''));
      } else podSet = true;
    }
    const explicit: string[] = [];
    const implicit: string[] = [];
    for (const c of containers(spec)) {
      const profile = sc(c)?.['seccompProfile'] as { type?: string } | undefined | null;
      if (profile) {
        if (!valid(profile.type)) {
          explicit.push(String(c.name));
          badValues.add(String(profile.type ?? ''));
        }
      } else if (!podSet) implicit.push(String(c.name));
    }
    if (explicit.length) badSetters.push(`${pluralize('container', 'containers', explicit.length)} ${joinQuote(explicit)}`);
    if (badSetters.length)
      return {
        reason: 'seccompProfile',
        detail: `${badSetters.join(' and ')} must not set securityContext.seccompProfile.type to ${joinQuote(sortedUnique(badValues))}`,
      };
    if (requireSet && implicit.length) {
      return {
        reason: 'seccompProfile',
        detail: `pod or ${pluralize('container', 'containers', implicit.length)} ${joinQuote(implicit)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`,
      };
    }
    return undefined;
  };
}

const allowPrivilegeEscalation: Check = (spec) => {
  if (isWindows(spec)) return undefined;
  const bad = names(containers(spec).filter((c) => sc(c)?.['allowPrivilegeEscalation'] !== false));
  return bad.length
    ? {
        reason: 'allowPrivilegeEscalation != false',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must set securityContext.allowPrivilegeEscalation=false`,
      }
    : undefined;
};

const capabilitiesRestricted: Check = (spec) => {
  if (isWindows(spec)) return undefined;
  const missingDrop: string[] = [];
  const adding: string[] = [];
  const caps = new Set<string>();
  for (const c of containers(spec)) {
    const cc = capabilities(c);
    if (!cc) {
      missingDrop.push(String(c.name));
      continue;
    }
    if (!cc.drop.includes('ALL')) missingDrop.push(String(c.name));
    const extra = cc.add.filter((a) => a !== 'NET_BIND_SERVICE');
    for (const a of extra) caps.add(a);
    if (extra.length) adding.push(String(c.name));
  }
  const details: string[] = [];
  if (missingDrop.length)
    details.push(`${pluralize('container', 'containers', missingDrop.length)} ${joinQuote(missingDrop)} must set securityContext.capabilities.drop=["ALL"]`);
  if (adding.length)
    details.push(
      `${pluralize('container', 'containers', adding.length)} ${joinQuote(adding)} must not include ${joinQuote(sortedUnique(caps))} in securityContext.capabilities.add`,
    );
  return details.length ? { reason: 'unrestricted capabilities', detail: details.join('; ') } : undefined;
};

const restrictedVolumes: Check = (spec) => {
  const bad: string[] = [];
  const types = new Set<string>();
  for (const v of volumes(spec)) {
    if (RESTRICTED_VOLUME_SOURCES.some((k) => present(v[k]))) continue;
    bad.push(String(v['name']));
    types.add(OTHER_VOLUME_SOURCES.find((k) => present(v[k])) ?? 'unknown');
  }
  if (!bad.length) return undefined;
  const t = sortedUnique(types);
  return {
    reason: 'restricted volume types',
    detail: `${pluralize('volume', 'volumes', bad.length)} ${joinQuote(bad)} ${pluralize('uses', 'use', bad.length)} ${pluralize('restricted volume type', 'restricted volume types', t.length)} ${joinQuote(t)}`,
  };
};

const runAsNonRoot: Check = (spec) => {
  const badSetters: string[] = [];
  const podValue = podSc(spec)?.['runAsNonRoot'];
  let podNonRoot = false;
  if (podValue !== undefined && podValue !== null) {
    if (podValue !== true) badSetters.push('pod');
    else podNonRoot = true;
  }
  const explicit: string[] = [];
  const implicit: string[] = [];
  for (const c of containers(spec)) {
    const v = sc(c)?.['runAsNonRoot'];
    if (v !== undefined && v !== null) {
      if (v !== true) explicit.push(String(c.name));
    } else if (!podNonRoot) implicit.push(String(c.name));
  }
  if (explicit.length) badSetters.push(`${pluralize('container', 'containers', explicit.length)} ${joinQuote(explicit)}`);
  if (badSetters.length) return { reason: 'runAsNonRoot != true', detail: `${badSetters.join(' and ')} must not set securityContext.runAsNonRoot=false` };
  if (implicit.length)
    return {
      reason: 'runAsNonRoot != true',
      detail: `pod or ${pluralize('container', 'containers', implicit.length)} ${joinQuote(implicit)} must set securityContext.runAsNonRoot=true`,
    };
  return undefined;
};

const runAsUser: Check = (spec) => {
  const badSetters: string[] = [];
  if (podSc(spec)?.['runAsUser'] === 0) badSetters.push('pod');
  const bad = names(containers(spec).filter((c) => sc(c)?.['runAsUser'] === 0));
  if (bad.length) badSetters.push(`${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)}`);
  return badSetters.length ? { reason: 'runAsUser=0', detail: `${badSetters.join(' and ')} must not set runAsUser=0` } : undefined;
};

// In registry.go's order: baseline IDs sorted, then restricted IDs sorted; `overrides` names
// the baseline check a restricted check replaces at the restricted level.
const CHECKS: Array<{ id: string; level: 'baseline' | 'restricted'; check: Check; overrides?: string }> = [
  { id: 'capabilities_baseline', level: 'baseline', check: capabilitiesBaseline },
  { id: 'hostNamespaces', level: 'baseline', check: hostNamespaces },
  { id: 'hostPathVolumes', level: 'baseline', check: hostPathVolumes },
  { id: 'hostPorts', level: 'baseline', check: hostPorts },
  { id: 'privileged', level: 'baseline', check: privileged },
  { id: 'seccompProfile_baseline', level: 'baseline', check: seccompCheck(false) },
  { id: 'allowPrivilegeEscalation', level: 'restricted', check: allowPrivilegeEscalation },
  { id: 'capabilities_restricted', level: 'restricted', check: capabilitiesRestricted, overrides: 'capabilities_baseline' },
  { id: 'restrictedVolumes', level: 'restricted', check: restrictedVolumes, overrides: 'hostPathVolumes' },
  { id: 'runAsNonRoot', level: 'restricted', check: runAsNonRoot },
  { id: 'runAsUser', level: 'restricted', check: runAsUser },
  { id: 'seccompProfile_restricted', level: 'restricted', check: seccompCheck(true), overrides: 'seccompProfile_baseline' },
];

/** The aggregated ForbiddenDetail of checks.go (`reason (detail), reason (detail)`), or undefined when the pod spec passes. */
export function evaluatePodSpec(level: Level, spec: Obj): string | undefined {
  if (level === 'privileged') return undefined;
  const active = level === 'baseline' ? CHECKS.filter((c) => c.level === 'baseline') : CHECKS.filter((c) => !CHECKS.some((r) => r.overrides === c.id));
  const failures = active.map((c) => c.check(spec)).filter((r): r is CheckResult => r !== undefined);
  return failures.length ? failures.map((f) => (f.detail ? `${f.reason} (${f.detail})` : f.reason)).join(', ') : undefined;
}

/** The pod template of a pod controller (DefaultPodSpecExtractor), if the kind has one. */
export function podTemplateSpec(obj: KubeObject): Obj | undefined {
  const spec = obj['spec'] as Obj | undefined;
  const template =
    obj.kind === 'PodTemplate'
      ? (obj['template'] as Obj | undefined)
      : obj.kind === 'CronJob'
        ? ((spec?.['jobTemplate'] as Obj | undefined)?.['spec'] as Obj | undefined)?.['template']
        : spec?.['template'];
  const podSpec = (template as Obj | undefined)?.['spec'];
  return podSpec && typeof podSpec === 'object' ? (podSpec as Obj) : undefined;
}

export const POD_CONTROLLER_KINDS = new Set(['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet', 'Job', 'CronJob', 'ReplicationController', 'PodTemplate']);
