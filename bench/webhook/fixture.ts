// The webhook benchmark's workload: a realistic Pod of a Deployment in an AdmissionReview, and the
// dictionary entries that give every mutator something to do.

/** A realistic Pod of a Deployment: two containers, sidecar, probes, volumes, every mutator with something to do. */
export function pod(i: number): Record<string, unknown> {
  const container = (name: string, image: string) => ({
    name,
    image,
    ports: [{ containerPort: 8080, protocol: 'TCP' }],
    env: [
      { name: 'DATABASE_URL', value: 'nemu_env_db' },
      { name: 'CACHE_URL', value: 'nemu_env_cache' },
      { name: 'LOG_LEVEL', value: 'info' },
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'REGION', value: 'eu-west-1' },
    ],
    resources: { limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '1', memory: '1Gi' } },
    readinessProbe: { httpGet: { path: '/ready', port: 8080 }, periodSeconds: 5 },
    livenessProbe: { httpGet: { path: '/live', port: 8080 }, periodSeconds: 10 },
    volumeMounts: [
      { name: 'config', mountPath: '/etc/app' },
      { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true },
    ],
    terminationMessagePath: '/dev/termination-log',
    imagePullPolicy: 'IfNotPresent',
  });
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'checkout-7d9f8-',
      namespace: 'shop',
      labels: { 'app.kubernetes.io/name': 'checkout', 'pod-template-hash': '7d9f8', nemu_label_team: 'nemu_label_value_pay', nemu_label_tier: 'backend' },
      annotations: { nemu_anno_contact: 'nemu_anno_value_oncall', 'prometheus.io/scrape': 'true' },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'checkout-7d9f8', uid: `rs-${i % 7}`, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      containers: [container('app', 'registry.example.com:5000/shop/checkout:1.4.2'), container('proxy', 'envoyproxy/envoy:v1.29.0')],
      initContainers: [
        {
          name: 'migrate',
          image: 'registry.example.com:5000/shop/checkout:1.4.2',
          command: ['migrate'],
          env: [{ name: 'DATABASE_URL', value: 'nemu_env_db' }],
        },
      ],
      volumes: [
        { name: 'config', configMap: { name: 'checkout' } },
        { name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } },
      ],
      serviceAccountName: 'checkout',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
    },
  };
}

export function review(i: number): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'shop',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object: pod(i),
    },
  });
}

export const DICTIONARY: Readonly<Record<string, string>> = {
  nemu_label_team: 'example.com/team',
  nemu_label_value_pay: 'payments',
  nemu_label_tier: 'example.com/tier',
  nemu_anno_contact: 'example.com/contact',
  nemu_anno_value_oncall: 'oncall-payments@example.com',
  nemu_env_db: 'postgres://db.shop.svc:5432/checkout',
  nemu_env_cache: 'redis://cache.shop.svc:6379/0',
  'nemu_image_shop/checkout': '1.4.3',
  nemu_image_envoy: `sha256:${'e'.repeat(64)}`,
  nemu_tolerations: JSON.stringify([
    {
      match: { namespace: 'shop', labels: { 'example.com/team': 'payments' } },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'payments', effect: 'NoSchedule' }],
    },
  ]),
};
