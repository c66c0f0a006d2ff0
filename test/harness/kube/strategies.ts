// Per-kind behaviour of the registry, after kube-apiserver's REST strategies: defaulting
// (SetDefaults_*), PrepareForCreate/PrepareForUpdate (status and generation handling) and
// the validation rules clients of the double are likely to run into.
import { isDeepStrictEqual } from 'node:util';

import { matchConditionProblem } from './admission.ts';
import type { ResourceType } from './resources.ts';
import { labelKeyProblem, type LabelSelectorObject, labelValueProblem, matchesLabelSelectorObject } from './selectors.ts';
import type { FieldError } from './status.ts';
import type { KubeObject } from './store.ts';

type Obj = Record<string, unknown>;

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined;
}

function ensureObj(parent: Obj, key: string): Obj {
  const v = obj(parent[key]);
  if (v) return v;
  const fresh: Obj = {};
  parent[key] = fresh;
  return fresh;
}

function arr(v: unknown): Obj[] {
  return Array.isArray(v) ? (v.filter((x) => obj(x)) as Obj[]) : [];
}

export function nowTimestamp(date = new Date()): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// ---- defaulting ----------------------------------------------------------------------------

function defaultContainer(c: Obj): void {
  c['terminationMessagePath'] ??= '/dev/termination-log';
  c['terminationMessagePolicy'] ??= 'File';
  if (c['imagePullPolicy'] === undefined) {
    const image = String(c['image'] ?? '');
    const lastPart = image.split('/').pop() ?? '';
    const tagged = lastPart.includes(':') || image.includes('@');
    c['imagePullPolicy'] = !tagged || image.endsWith(':latest') ? 'Always' : 'IfNotPresent';
  }
  c['resources'] ??= {};
  for (const p of arr(c['ports'])) p['protocol'] ??= 'TCP';
  for (const e of arr(c['env'])) {
    const fieldRef = obj(obj(e['valueFrom'])?.['fieldRef']);
    if (fieldRef) fieldRef['apiVersion'] ??= 'v1';
  }
}

export function defaultPodSpec(spec: Obj): void {
  spec['restartPolicy'] ??= 'Always';
  spec['terminationGracePeriodSeconds'] ??= 30;
  spec['dnsPolicy'] ??= 'ClusterFirst';
  spec['securityContext'] ??= {};
  spec['schedulerName'] ??= 'default-scheduler';
  spec['enableServiceLinks'] ??= true;
  if (spec['serviceAccountName'] !== undefined) spec['serviceAccount'] ??= spec['serviceAccountName'];
  for (const c of [...arr(spec['containers']), ...arr(spec['initContainers'])]) defaultContainer(c);
  for (const v of arr(spec['volumes'])) {
    const secret = obj(v['secret']);
    if (secret) secret['defaultMode'] ??= 420;
    const cm = obj(v['configMap']);
    if (cm) cm['defaultMode'] ??= 420;
    const projected = obj(v['projected']);
    if (projected) projected['defaultMode'] ??= 420;
  }
}

function defaultTemplate(spec: Obj): void {
  const template = ensureObj(spec, 'template');
  ensureObj(template, 'metadata');
  defaultPodSpec(ensureObj(template, 'spec'));
}

const DEFAULTERS: Record<string, (o: KubeObject) => void> = {
  Pod(o) {
    defaultPodSpec(ensureObj(o, 'spec'));
  },
  Deployment(o) {
    const spec = ensureObj(o, 'spec');
    spec['replicas'] ??= 1;
    const strategy = ensureObj(spec, 'strategy');
    strategy['type'] ??= 'RollingUpdate';
    if (strategy['type'] === 'RollingUpdate') {
      const ru = ensureObj(strategy, 'rollingUpdate');
      ru['maxUnavailable'] ??= '25%';
      ru['maxSurge'] ??= '25%';
    }
    spec['revisionHistoryLimit'] ??= 10;
    spec['progressDeadlineSeconds'] ??= 600;
    defaultTemplate(spec);
  },
  ReplicaSet(o) {
    const spec = ensureObj(o, 'spec');
    spec['replicas'] ??= 1;
    defaultTemplate(spec);
  },
  StatefulSet(o) {
    const spec = ensureObj(o, 'spec');
    spec['replicas'] ??= 1;
    spec['podManagementPolicy'] ??= 'OrderedReady';
    const us = ensureObj(spec, 'updateStrategy');
    us['type'] ??= 'RollingUpdate';
    if (us['type'] === 'RollingUpdate') ensureObj(us, 'rollingUpdate')['partition'] ??= 0;
    spec['revisionHistoryLimit'] ??= 10;
    defaultTemplate(spec);
  },
  DaemonSet(o) {
    const spec = ensureObj(o, 'spec');
    const us = ensureObj(spec, 'updateStrategy');
    us['type'] ??= 'RollingUpdate';
    if (us['type'] === 'RollingUpdate') {
      const ru = ensureObj(us, 'rollingUpdate');
      ru['maxUnavailable'] ??= 1;
      ru['maxSurge'] ??= 0;
    }
    spec['revisionHistoryLimit'] ??= 10;
    defaultTemplate(spec);
  },
  Service(o) {
    const spec = ensureObj(o, 'spec');
    spec['type'] ??= 'ClusterIP';
    spec['sessionAffinity'] ??= 'None';
    spec['internalTrafficPolicy'] ??= 'Cluster';
    spec['ipFamilyPolicy'] ??= 'SingleStack';
    spec['ipFamilies'] ??= ['IPv4'];
    for (const p of arr(spec['ports'])) {
      p['protocol'] ??= 'TCP';
      p['targetPort'] ??= p['port'];
    }
  },
  Secret(o) {
    o['type'] ??= 'Opaque';
    const stringData = obj(o['stringData']);
    if (stringData) {
      const data = ensureObj(o, 'data');
      for (const [k, v] of Object.entries(stringData)) data[k] = Buffer.from(String(v)).toString('base64');
      delete o['stringData'];
    }
  },
  Namespace(o) {
    const name = o.metadata.name;
    if (name) o.metadata.labels = { ...(o.metadata.labels ?? {}), 'kubernetes.io/metadata.name': name };
  },
  MutatingWebhookConfiguration(o) {
    for (const w of arr(o['webhooks'])) {
      w['failurePolicy'] ??= 'Fail';
      w['matchPolicy'] ??= 'Equivalent';
      w['namespaceSelector'] ??= {};
      w['objectSelector'] ??= {};
      w['timeoutSeconds'] ??= 10;
      w['reinvocationPolicy'] ??= 'Never';
      for (const r of arr(w['rules'])) r['scope'] ??= '*';
      const service = obj(obj(w['clientConfig'])?.['service']);
      if (service) service['port'] ??= 443;
    }
  },
  PodDisruptionBudget(o) {
    ensureObj(o, 'spec');
  },
};

export function applyDefaults(r: ResourceType, o: KubeObject): void {
  DEFAULTERS[r.kind]?.(o);
}

// ---- prepare for create / update -----------------------------------------------------------

export function prepareForCreate(r: ResourceType, o: KubeObject): void {
  if (r.generation) o.metadata.generation = 1;
  switch (r.kind) {
    case 'Pod': {
      const spec = obj(o['spec']) ?? {};
      o['status'] = { phase: 'Pending', qosClass: qosClass(spec) };
      break;
    }
    case 'Namespace':
      o['spec'] = { finalizers: ['kubernetes'] };
      o['status'] = { phase: 'Active' };
      break;
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'PodDisruptionBudget':
      o['status'] = r.kind === 'PodDisruptionBudget' ? { disruptionsAllowed: 0, currentHealthy: 0, desiredHealthy: 0, expectedPods: 0 } : {};
      break;
    case 'Service':
      o['status'] = { loadBalancer: {} };
      break;
  }
}

/**
 * Carries over what the caller may not change. For a resource with a status subresource,
 * an update of the main resource keeps the old status and a status update keeps
 * everything but status (metav1.ResetObjectMetaForStatus).
 */
export function prepareForUpdate(r: ResourceType, next: KubeObject, old: KubeObject, subresource: string | undefined): KubeObject {
  const keepMeta = ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'generateName'] as const;
  let result = next;
  if (subresource === 'status') {
    result = { ...structuredClone(old), status: structuredClone(next['status']) };
    if (next.metadata.resourceVersion) result.metadata.resourceVersion = next.metadata.resourceVersion;
    if (next['status'] === undefined) delete result['status'];
  } else if (subresource === 'resize') {
    // Only container resources (and resize policy) may change through resize.
    result = structuredClone(old);
    const oldContainers = arr(obj(result['spec'])?.['containers']);
    const newContainers = arr(obj(next['spec'])?.['containers']);
    for (const c of oldContainers) {
      const n = newContainers.find((x) => x['name'] === c['name']);
      if (n) {
        if (n['resources'] !== undefined) c['resources'] = n['resources'];
        if (n['resizePolicy'] !== undefined) c['resizePolicy'] = n['resizePolicy'];
      }
    }
    if (next.metadata.resourceVersion) result.metadata.resourceVersion = next.metadata.resourceVersion;
  } else if (r.subresources.includes('status')) {
    if (old['status'] === undefined) delete result['status'];
    else result['status'] = structuredClone(old['status']);
  }
  const meta = result.metadata as Record<string, unknown>;
  for (const k of keepMeta) {
    if (old.metadata[k] === undefined) delete meta[k];
    else meta[k] = old.metadata[k];
  }
  if (r.generation && subresource === undefined && !isDeepStrictEqual(withoutMetaAndStatus(result), withoutMetaAndStatus(old))) {
    result.metadata.generation = (old.metadata.generation ?? 1) + 1;
  }
  if (r.kind === 'Namespace') {
    result['spec'] = structuredClone(old['spec']);
  }
  return result;
}

function withoutMetaAndStatus(o: KubeObject): Obj {
  const { metadata: _m, status: _s, ...rest } = o;
  return rest;
}

function qosClass(spec: Obj): string {
  const containers = [...arr(spec['containers']), ...arr(spec['initContainers'])];
  let anyRequestOrLimit = false;
  let guaranteed = containers.length > 0;
  for (const c of containers) {
    const res = obj(c['resources']) ?? {};
    const req = obj(res['requests']) ?? {};
    const lim = obj(res['limits']) ?? {};
    if (Object.keys(req).length || Object.keys(lim).length) anyRequestOrLimit = true;
    for (const k of ['cpu', 'memory']) {
      const l = lim[k];
      const q = req[k] ?? l;
      if (l === undefined || String(q) !== String(l)) guaranteed = false;
    }
  }
  if (!anyRequestOrLimit) return 'BestEffort';
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

// ---- validation -------------------------------------------------------------------------------

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function nameProblem(r: ResourceType, name: string): string | undefined {
  if (r.group === 'rbac.authorization.k8s.io') {
    if (name === '.' || name === '..') return `may not be '${name}'`;
    if (/[/%]/.test(name)) return "may not contain '/' or '%'";
    return undefined;
  }
  if (r.kind === 'Namespace' || r.kind === 'Service') {
    if (name.length > 63 || !DNS_LABEL.test(name)) {
      return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    }
    return undefined;
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    return "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
  }
  return undefined;
}

function validateMetadata(r: ResourceType, o: KubeObject, errors: FieldError[]): void {
  const name = o.metadata.name;
  if (!name) {
    errors.push({ type: 'FieldValueRequired', field: 'metadata.name', detail: 'name or generateName is required' });
  } else {
    const p = nameProblem(r, name);
    if (p) errors.push({ type: 'FieldValueInvalid', field: 'metadata.name', value: name, detail: p });
  }
  for (const [k, v] of Object.entries(o.metadata.labels ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', value: k, detail: kp });
    if (typeof v !== 'string') errors.push({ type: 'FieldValueInvalid', field: `metadata.labels`, value: v, detail: 'must be a string' });
    else {
      const vp = labelValueProblem(v);
      if (vp) errors.push({ type: 'FieldValueInvalid', field: 'metadata.labels', value: v, detail: vp });
    }
  }
  for (const [k, v] of Object.entries(o.metadata.annotations ?? {})) {
    const kp = labelKeyProblem(k);
    if (kp) errors.push({ type: 'FieldValueInvalid', field: 'metadata.annotations', value: k, detail: kp });
    if (typeof v !== 'string') errors.push({ type: 'FieldValueInvalid', field: 'metadata.annotations', value: v, detail: 'must be a string' });
  }
}

function validateContainers(path: string, containers: unknown, required: boolean, errors: FieldError[]): void {
  const list = arr(containers);
  if (required && list.length === 0) errors.push({ type: 'FieldValueRequired', field: path, detail: '' });
  const seen = new Set<string>();
  list.forEach((c, i) => {
    const name = c['name'];
    if (typeof name !== 'string' || name === '') errors.push({ type: 'FieldValueRequired', field: `${path}[${i}].name`, detail: '' });
    else if (seen.has(name)) errors.push({ type: 'FieldValueDuplicate', field: `${path}[${i}].name`, detail: '', value: name });
    else seen.add(name);
    if (typeof c['image'] !== 'string' || c['image'] === '') errors.push({ type: 'FieldValueRequired', field: `${path}[${i}].image`, detail: '' });
  });
}

function validatePodSpec(path: string, spec: Obj | undefined, errors: FieldError[]): void {
  validateContainers(`${path}.containers`, spec?.['containers'], true, errors);
  validateContainers(`${path}.initContainers`, spec?.['initContainers'], false, errors);
}

function validateSelectorMatchesTemplate(o: KubeObject, errors: FieldError[]): void {
  const spec = obj(o['spec']) ?? {};
  const selector = obj(spec['selector']) as LabelSelectorObject | undefined;
  if (!selector || (Object.keys(selector.matchLabels ?? {}).length === 0 && (selector.matchExpressions ?? []).length === 0)) {
    errors.push({ type: 'FieldValueRequired', field: 'spec.selector', detail: '' });
    return;
  }
  const labels = obj(obj(obj(spec['template'])?.['metadata'])?.['labels']) as Record<string, string> | undefined;
  if (!matchesLabelSelectorObject(selector, labels)) {
    errors.push({
      type: 'FieldValueInvalid',
      field: 'spec.template.metadata.labels',
      value: labels ?? {},
      detail: '`selector` does not match template `labels`',
    });
  }
  validatePodSpec('spec.template.spec', obj(obj(spec['template'])?.['spec']), errors);
}

const VALIDATORS: Record<string, (o: KubeObject, errors: FieldError[]) => void> = {
  Pod(o, errors) {
    validatePodSpec('spec', obj(o['spec']), errors);
  },
  Deployment: validateSelectorMatchesTemplate,
  ReplicaSet: validateSelectorMatchesTemplate,
  StatefulSet: validateSelectorMatchesTemplate,
  DaemonSet: validateSelectorMatchesTemplate,
  PodDisruptionBudget(o, errors) {
    const spec = obj(o['spec']) ?? {};
    if (spec['minAvailable'] !== undefined && spec['maxUnavailable'] !== undefined) {
      errors.push({ type: 'FieldValueInvalid', field: 'spec', value: spec, detail: 'minAvailable and maxUnavailable cannot be both set' });
    }
  },
  Secret(o, errors) {
    for (const [k, v] of Object.entries(obj(o['data']) ?? {})) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
        errors.push({ type: 'FieldValueInvalid', field: `data[${k}]`, value: v, detail: 'illegal base64 data' });
      }
    }
  },
  MutatingWebhookConfiguration(o, errors) {
    const seen = new Set<string>();
    arr(o['webhooks']).forEach((w, i) => {
      const p = `webhooks[${i}]`;
      const name = String(w['name'] ?? '');
      if (name.split('.').length < 3)
        errors.push({
          type: 'FieldValueInvalid',
          field: `${p}.name`,
          value: name,
          detail: 'should be a domain with at least three segments separated by dots',
        });
      if (seen.has(name)) errors.push({ type: 'FieldValueDuplicate', field: `${p}.name`, value: name, detail: '' });
      seen.add(name);
      const versions = w['admissionReviewVersions'];
      if (!Array.isArray(versions) || versions.length === 0) {
        errors.push({ type: 'FieldValueRequired', field: `${p}.admissionReviewVersions`, detail: 'must specify one of v1, v1beta1' });
      }
      const se = w['sideEffects'];
      if (se === undefined) errors.push({ type: 'FieldValueRequired', field: `${p}.sideEffects`, detail: 'must specify one of None, NoneOnDryRun' });
      else if (se !== 'None' && se !== 'NoneOnDryRun')
        errors.push({ type: 'FieldValueNotSupported', field: `${p}.sideEffects`, value: se, detail: 'supported values: "None", "NoneOnDryRun"' });
      const fp = w['failurePolicy'];
      if (fp !== 'Ignore' && fp !== 'Fail')
        errors.push({ type: 'FieldValueNotSupported', field: `${p}.failurePolicy`, value: fp, detail: 'supported values: "Fail", "Ignore"' });
      const rp = w['reinvocationPolicy'];
      if (rp !== 'Never' && rp !== 'IfNeeded')
        errors.push({ type: 'FieldValueNotSupported', field: `${p}.reinvocationPolicy`, value: rp, detail: 'supported values: "IfNeeded", "Never"' });
      const t = Number(w['timeoutSeconds']);
      if (!(t >= 1 && t <= 30))
        errors.push({
          type: 'FieldValueInvalid',
          field: `${p}.timeoutSeconds`,
          value: w['timeoutSeconds'],
          detail: 'the timeout value must be between 1 and 30 seconds',
        });
      const cc = obj(w['clientConfig']) ?? {};
      const hasUrl = typeof cc['url'] === 'string';
      const hasService = obj(cc['service']) !== undefined;
      if (hasUrl === hasService) errors.push({ type: 'FieldValueRequired', field: `${p}.clientConfig`, detail: 'exactly one of url or service is required' });
      if (hasUrl && !String(cc['url']).startsWith('https://')) {
        errors.push({ type: 'FieldValueInvalid', field: `${p}.clientConfig.url`, value: cc['url'], detail: "'https' is the only allowed URL scheme" });
      }
      validateMatchConditions(w['matchConditions'], `${p}.matchConditions`, errors);
    });
  },
  RoleBinding: validateBinding,
  ClusterRoleBinding: validateBinding,
};

/** As ValidateMatchConditions in k8s.io/kubernetes/pkg/apis/admissionregistration/validation. */
function validateMatchConditions(value: unknown, path: string, errors: FieldError[]): void {
  if (value === undefined || value === null) return;
  const conditions = arr(value);
  if (conditions.length > 64) errors.push({ type: 'FieldValueTooMany', field: path, value: conditions.length, detail: 'must have at most 64 items' });
  const names = new Set<string>();
  conditions.forEach((c, j) => {
    const p = `${path}[${j}]`;
    const expression = typeof c['expression'] === 'string' ? c['expression'].trim() : '';
    if (expression === '') errors.push({ type: 'FieldValueRequired', field: `${p}.expression`, detail: '' });
    else {
      const problem = matchConditionProblem(expression);
      if (problem) errors.push({ type: 'FieldValueInvalid', field: `${p}.expression`, value: expression, detail: problem });
    }
    const name = typeof c['name'] === 'string' ? c['name'] : '';
    if (name === '') errors.push({ type: 'FieldValueRequired', field: `${p}.name`, detail: '' });
    else {
      const problem = labelKeyProblem(name);
      if (problem) errors.push({ type: 'FieldValueInvalid', field: `${p}.name`, value: name, detail: problem });
    }
    if (name !== '') {
      if (names.has(name)) errors.push({ type: 'FieldValueDuplicate', field: `${p}.name`, value: name, detail: '' });
      names.add(name);
    }
  });
}

function validateBinding(o: KubeObject, errors: FieldError[]): void {
  const ref = obj(o['roleRef']);
  if (!ref?.['name']) errors.push({ type: 'FieldValueRequired', field: 'roleRef.name', detail: '' });
  if (ref?.['kind'] !== 'Role' && ref?.['kind'] !== 'ClusterRole')
    errors.push({ type: 'FieldValueNotSupported', field: 'roleRef.kind', value: ref?.['kind'], detail: 'supported values: "ClusterRole", "Role"' });
}

export function validateCreate(r: ResourceType, o: KubeObject): FieldError[] {
  const errors: FieldError[] = [];
  validateMetadata(r, o, errors);
  VALIDATORS[r.kind]?.(o, errors);
  return errors;
}

export function validateUpdate(r: ResourceType, next: KubeObject, old: KubeObject, subresource: string | undefined): FieldError[] {
  const errors: FieldError[] = [];
  validateMetadata(r, next, errors);
  if (subresource === undefined || subresource === 'resize') VALIDATORS[r.kind]?.(next, errors);
  const spec = obj(next['spec']);
  const oldSpec = obj(old['spec']);
  if (subresource === undefined && ['Deployment', 'ReplicaSet', 'StatefulSet', 'DaemonSet'].includes(r.kind)) {
    if (!isDeepStrictEqual(spec?.['selector'], oldSpec?.['selector'])) {
      errors.push({ type: 'FieldValueInvalid', field: 'spec.selector', value: spec?.['selector'], detail: 'field is immutable' });
    }
  }
  if (subresource === undefined && r.kind === 'Pod' && !isDeepStrictEqual(mutablePodSpecView(spec), mutablePodSpecView(oldSpec))) {
    errors.push({
      type: 'FieldValueForbidden',
      field: 'spec',
      detail:
        'pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)',
    });
  }
  if ((r.kind === 'RoleBinding' || r.kind === 'ClusterRoleBinding') && !isDeepStrictEqual(next['roleRef'], old['roleRef'])) {
    errors.push({ type: 'FieldValueInvalid', field: 'roleRef', value: next['roleRef'], detail: 'cannot change roleRef' });
  }
  return errors;
}

/** The pod spec with the fields an update may change blanked out. */
function mutablePodSpecView(spec: Obj | undefined): Obj {
  const s = structuredClone(spec ?? {});
  for (const key of ['containers', 'initContainers', 'ephemeralContainers']) {
    for (const c of arr(s[key])) delete c['image'];
  }
  delete s['activeDeadlineSeconds'];
  delete s['tolerations'];
  delete s['terminationGracePeriodSeconds'];
  return s;
}
