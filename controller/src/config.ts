/** The controller's configuration: every key, its default and its meaning, in one place. */
import { boolean, duration, integer, oneOf, port, string, url, type ConfigOf } from '../../common/src/config.ts';

export const controllerSchema = {
  host: string('0.0.0.0', 'Address every server listens on.'),
  webhookPort: port(8443, 'HTTPS port of the admission webhook (/mutate, /healthz, /readyz, /metrics).'),
  apiPort: port(8080, 'HTTP port of the REST API (/api/v1/..., /healthz, /readyz).'),
  fleetPort: port(8444, 'WSS port of the fleet hub that agents dial (path /fleet).'),
  stateDir: string('/var/lib/nemutator', 'Directory for the embedded store, generated certificates and local tokens.'),
  tlsCertFile: string('', 'Mounted serving certificate (e.g. from cert-manager). Empty: a self-managed CA issues one.'),
  tlsKeyFile: string('', 'Key of the mounted serving certificate.'),
  tlsCaFile: string('', 'CA of the mounted serving certificate (for caBundle and agents).'),
  tlsDnsNames: string('', 'Extra DNS names for the self-managed serving certificate, comma-separated.'),
  namespace: string('nemutator', 'Namespace the controller runs in (its own namespace is never mutated).'),
  podName: string('', "This replica's pod name (downward API): its identity for leader election."),
  serviceName: string('nemutator-controller', 'Service in front of the controller; its DNS names go into the serving certificate.'),
  webhookConfigName: string('nemutator', 'MutatingWebhookConfiguration whose caBundle the leader keeps current.'),
  kubeconfig: string('', 'Kubeconfig file. Empty: in-cluster config when running in a pod, else no cluster (local mode).'),
  dictionary: oneOf(['auto', 'embedded', 'redis'] as const, 'auto', 'Dictionary backend; auto = redis when redisUrl is set, else the embedded store.'),
  redisUrl: url('', 'Redis for the dictionary, e.g. redis://redis.nemutator.svc:6379/0.', ['redis:', 'rediss:']),
  redisKeyPrefix: string('', 'Prefix of every dictionary key in Redis (several installations can share one Redis).'),
  dictionaryTimeout: duration('200ms', 'Longest wait for the dictionary round trip of one review; past it the object is admitted unchanged.', 10),
  dictionaryCacheTtl: duration('5s', 'How long a dictionary value is reused without asking Redis (changes made through nemutator invalidate it at once).'),
  resourceRatio: string('', 'Requests as limits ÷ ratio for containers whose requests were not chosen: empty = off, "2" = cpu and memory, or "cpu=4,memory=1.5".', {
    pattern: /^$|^0$|^\d+(\.\d+)?$|^(cpu|memory|ephemeral-storage)=\d+(\.\d+)?(,(cpu|memory|ephemeral-storage)=\d+(\.\d+)?)*$/,
    form: 'empty, a number ≥ 1, or resource=ratio pairs such as cpu=4,memory=1.5',
  }),
  prometheusUrl: url('', 'Prometheus HTTP API for telemetry-driven resources. Empty: no telemetry.'),
  agentServiceAccount: string('nemutator-agent', 'Service account (in namespace) whose tokens agents present on the fleet link.'),
  maxReviewBytes: integer(3 * 1024 * 1024, 'Largest AdmissionReview body accepted, in bytes.', 1024),
  fleetMaxFrameBytes: integer(4 * 1024 * 1024, 'Largest fleet-link frame accepted, in bytes.', 1024),
  nodeStaleAfter: duration('30s', 'A node whose last report is older than this is shown as stale.', 1000),
  logLevel: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const, 'info', 'Log level.'),
  logFormat: oneOf(['json', 'pretty'] as const, 'json', 'Log format.'),
  metricsDefaults: boolean(true, 'Export Node.js process metrics on /metrics.'),
};

export type ControllerConfig = ConfigOf<typeof controllerSchema>;
