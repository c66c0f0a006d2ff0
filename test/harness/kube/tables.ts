// meta.k8s.io/v1 Table responses (Accept: application/json;as=Table;g=meta.k8s.io;v=v1),
// which kubectl asks for to print `kubectl get`: the columns of the real printers for the
// kinds users look at most, NAME + AGE for the rest.
import type { ResourceType } from './resources.ts';
import type { KubeObject } from './store.ts';

interface Column {
  name: string;
  type: 'string' | 'integer' | 'date';
  format?: string;
  description: string;
  priority?: number;
  cell: (o: KubeObject) => string | number;
}

type Obj = Record<string, unknown>;
const get = (o: unknown, path: string): unknown =>
  path.split('.').reduce<unknown>((cur, k) => (cur && typeof cur === 'object' ? (cur as Obj)[k] : undefined), o);

export function humanDuration(seconds: number): string {
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  const s = Math.floor(seconds);
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  if (h < 192) return h % 24 === 0 ? `${Math.floor(h / 24)}d` : `${Math.floor(h / 24)}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24)}d`;
  return `${Math.floor(h / 24 / 365)}y`;
}

const NAME: Column = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace.',
  cell: (o) => o.metadata.name ?? '',
};
const AGE: Column = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  cell: (o) => (o.metadata.creationTimestamp ? humanDuration((Date.now() - Date.parse(o.metadata.creationTimestamp)) / 1000) : '<unknown>'),
};
const str = (name: string, description: string, cell: (o: KubeObject) => string | number, priority = 0, type: Column['type'] = 'string'): Column => ({
  name,
  type,
  description,
  priority,
  cell,
});

function podStatusReason(o: KubeObject): string {
  if (o.metadata.deletionTimestamp) return 'Terminating';
  const statuses = (get(o, 'status.containerStatuses') as Obj[] | undefined) ?? [];
  for (const cs of statuses) {
    const waiting = get(cs, 'state.waiting.reason');
    if (typeof waiting === 'string' && waiting) return waiting;
  }
  return String(get(o, 'status.reason') ?? get(o, 'status.phase') ?? 'Unknown');
}

const COLUMNS: Record<string, Column[]> = {
  Pod: [
    NAME,
    str('Ready', 'The aggregate readiness state of this pod for accepting traffic.', (o) => {
      const total = ((get(o, 'spec.containers') as unknown[] | undefined) ?? []).length;
      const ready = ((get(o, 'status.containerStatuses') as Obj[] | undefined) ?? []).filter((c) => c['ready'] === true).length;
      return `${ready}/${total}`;
    }),
    str('Status', 'The aggregate status of the containers in this pod.', podStatusReason),
    str(
      'Restarts',
      'The number of times the containers in this pod have been restarted.',
      (o) => ((get(o, 'status.containerStatuses') as Obj[] | undefined) ?? []).reduce((n, c) => n + Number(c['restartCount'] ?? 0), 0),
      0,
      'string',
    ),
    AGE,
    str('IP', 'IP address allocated to the pod.', (o) => String(get(o, 'status.podIP') ?? '<none>'), 1),
    str('Node', 'Name of the Node this pod is assigned to.', (o) => String(get(o, 'spec.nodeName') ?? '<none>'), 1),
    str('Nominated Node', 'Name of the node nominated by the scheduler.', (o) => String(get(o, 'status.nominatedNodeName') ?? '<none>'), 1),
    str('Readiness Gates', 'Pod readiness gates.', (o) => (((get(o, 'spec.readinessGates') as unknown[] | undefined) ?? []).length ? 'gated' : '<none>'), 1),
  ],
  Deployment: [
    NAME,
    str('Ready', 'Number of the pod with ready state', (o) => `${Number(get(o, 'status.readyReplicas') ?? 0)}/${Number(get(o, 'spec.replicas') ?? 0)}`),
    str(
      'Up-to-date',
      'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
      (o) => Number(get(o, 'status.updatedReplicas') ?? 0),
      0,
      'integer',
    ),
    str(
      'Available',
      'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
      (o) => Number(get(o, 'status.availableReplicas') ?? 0),
      0,
      'integer',
    ),
    AGE,
  ],
  ReplicaSet: [
    NAME,
    str('Desired', 'Number of desired pods.', (o) => Number(get(o, 'spec.replicas') ?? 0), 0, 'integer'),
    str('Current', 'Number of actual replicas.', (o) => Number(get(o, 'status.replicas') ?? 0), 0, 'integer'),
    str('Ready', 'Number of ready replicas.', (o) => Number(get(o, 'status.readyReplicas') ?? 0), 0, 'integer'),
    AGE,
  ],
  Namespace: [NAME, str('Status', 'The status of the namespace', (o) => String(get(o, 'status.phase') ?? '')), AGE],
  Node: [
    NAME,
    str('Status', 'The status of the node', (o) => {
      const ready = ((get(o, 'status.conditions') as Obj[] | undefined) ?? []).find((c) => c['type'] === 'Ready');
      const base = ready?.['status'] === 'True' ? 'Ready' : ready ? 'NotReady' : 'Unknown';
      return get(o, 'spec.unschedulable') ? `${base},SchedulingDisabled` : base;
    }),
    str(
      'Roles',
      'The roles of the node',
      (o) =>
        Object.keys(o.metadata.labels ?? {})
          .filter((k) => k.startsWith('node-role.kubernetes.io/'))
          .map((k) => k.slice('node-role.kubernetes.io/'.length))
          .join(',') || '<none>',
    ),
    AGE,
    str('Version', 'Kubelet Version reported by the node.', (o) => String(get(o, 'status.nodeInfo.kubeletVersion') ?? '')),
  ],
  ConfigMap: [
    NAME,
    str(
      'Data',
      'Number of data in configmap',
      (o) => Object.keys((o['data'] as Obj | undefined) ?? {}).length + Object.keys((o['binaryData'] as Obj | undefined) ?? {}).length,
      0,
      'integer',
    ),
    AGE,
  ],
  Secret: [
    NAME,
    str('Type', 'The type of the secret', (o) => String(o['type'] ?? '')),
    str('Data', 'Number of data in secret', (o) => Object.keys((o['data'] as Obj | undefined) ?? {}).length, 0, 'integer'),
    AGE,
  ],
  Service: [
    NAME,
    str('Type', 'The type of the service', (o) => String(get(o, 'spec.type') ?? '')),
    str('Cluster-IP', 'The IP address of the service', (o) => String(get(o, 'spec.clusterIP') ?? '<none>')),
    str('External-IP', 'The external IP of the service', () => '<none>'),
    str(
      'Port(s)',
      'The ports of the service',
      (o) => ((get(o, 'spec.ports') as Obj[] | undefined) ?? []).map((p) => `${String(p['port'])}/${String(p['protocol'] ?? 'TCP')}`).join(',') || '<none>',
    ),
    AGE,
  ],
  PodDisruptionBudget: [
    NAME,
    str('Min Available', 'The minimum number of pods that must be available', (o) => String(get(o, 'spec.minAvailable') ?? 'N/A')),
    str('Max Unavailable', 'The maximum number of pods that may be unavailable', (o) => String(get(o, 'spec.maxUnavailable') ?? 'N/A')),
    str(
      'Allowed Disruptions',
      'Calculated number of pods that may be disrupted at this time',
      (o) => Number(get(o, 'status.disruptionsAllowed') ?? 0),
      0,
      'integer',
    ),
    AGE,
  ],
  Lease: [NAME, str('Holder', 'The holder of the lease', (o) => String(get(o, 'spec.holderIdentity') ?? '')), AGE],
};

export type IncludeObject = 'None' | 'Metadata' | 'Object';

function partialMetadata(o: KubeObject): Obj {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function toTable(r: ResourceType, objects: KubeObject[], resourceVersion: string, include: IncludeObject = 'Metadata', extra: Obj = {}): Obj {
  const columns = COLUMNS[r.kind] ?? [NAME, AGE];
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion, ...extra },
    columnDefinitions: columns.map(({ name, type, format, description, priority }) => ({
      name,
      type,
      format: format ?? '',
      description,
      priority: priority ?? 0,
    })),
    rows: objects.map((o) => ({
      cells: columns.map((c) => c.cell(o)),
      ...(include === 'None' ? {} : { object: include === 'Object' ? { apiVersion: o.apiVersion, kind: o.kind, ...o } : partialMetadata(o) }),
    })),
  };
}

/** Does the Accept header ask for a Table? */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}
