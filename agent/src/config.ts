/** The agent's configuration: every key, its default and its meaning, in one place. */
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';

import { type ConfigOf, describedAs, duration, integer, oneOf, port, string, url } from '#common/config.js';

/** /sys/fs/cgroup when it is cgroup v2 (unified), else the hybrid mount /sys/fs/cgroup/unified, else /sys/fs/cgroup (v1). */
export function defaultCgroupRoot(): string {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return '/sys/fs/cgroup';
  if (existsSync('/sys/fs/cgroup/unified/cgroup.controllers')) return '/sys/fs/cgroup/unified';
  return '/sys/fs/cgroup';
}

export const agentSchema = {
  nodeName: describedAs(string(hostname(), 'Name of the node this agent runs on (downward API spec.nodeName in a cluster).'), 'the host name'),
  controllerUrl: url('wss://127.0.0.1:8444/fleet', "The controller's fleet hub.", ['wss:', 'ws:']),
  caFile: string('', "CA that signed the controller's certificate; pinned, the system CAs are not used."),
  tokenFile: string(
    '/var/run/secrets/nemutator/token',
    'Projected service-account token (audience nemutator) presented to the controller; re-read on every connect.',
  ),
  cgroupRoot: describedAs(
    string(defaultCgroupRoot(), 'Root of the cgroup hierarchy (in a pod: the host /sys/fs/cgroup mounted read-only).'),
    '/sys/fs/cgroup if it is cgroup v2, else /sys/fs/cgroup/unified (hybrid), else /sys/fs/cgroup',
  ),
  cgroupVersion: oneOf(['auto', 'v1', 'v2'] as const, 'auto', 'cgroup version; auto detects it from the root.'),
  procRoot: string('/proc', 'The host /proc (the agent runs with hostPID).'),
  kubeconfig: string('', 'Kubeconfig file. Empty: in-cluster config when running in a pod, else no cluster (pods are then reported by UID only).'),
  socketPath: string('/run/nemutator/agent.sock', 'Unix socket that serves secrets to the pods of this node.'),
  socketMode: string(
    '0666',
    'Permissions of the secrets socket (octal). Every pod of the node may connect; each call is identified by its process and token.',
    { pattern: /^0?[0-7]{3}$/, form: 'an octal file mode such as 0666' },
  ),
  csiSocket: string(
    '',
    "Unix socket of the CSI node plugin csi.nemutator.io, which bind-mounts the secrets socket's directory read-only into pods that declare a csi volume (docs/csi.md). Empty disables it (local mode); the DaemonSet sets /csi/csi.sock.",
  ),
  csiKubeletDir: string('/var/lib/kubelet', "kubelet's root directory (its --root-dir): the CSI plugin mounts only on targets under <csiKubeletDir>/pods."),
  vaultAddr: url('', 'Vault address; empty disables the secrets socket.'),
  vaultAuthMount: string('kubernetes', "Mount path of Vault's kubernetes auth method; the agent logs in there with each pod's own token."),
  vaultAudience: string('vault', 'Audience the pod tokens must carry (a pod may override it with the nemutator.io/vault-audience annotation).'),
  vaultTimeout: duration('5s', 'Timeout of one Vault request.', 100),
  rotationInterval: duration('30s', 'How often KV v2 versions are checked for rotation (with ±10% jitter).', 100),
  maxStaleness: duration(
    '5m',
    'While Vault is unreachable, cached values are served for at most this long after the last successful check; then reads fail.',
    100,
  ),
  secretsRateLimit: integer(500, 'Secrets socket requests per second allowed per pod (bursts up to twice that); 0 = unlimited.', 0),
  jwksUrl: url('', "JWKS that signs service-account tokens. Empty: the API server's /openid/v1/jwks."),
  host: string('0.0.0.0', 'Address of the metrics server.'),
  metricsPort: port(9101, 'HTTP port of the agent metrics (/metrics, /healthz).'),
  metricsAuth: oneOf(
    ['auto', 'kube', 'none'] as const,
    'auto',
    'Who may read /metrics (it names every pod of the node; /healthz is always open). kube: as for the kubelet, a bearer token checked by TokenReview, then a SubjectAccessReview for get nodes/metrics on this node. none: anyone who reaches host:metricsPort. auto: kube when the agent has an API server (kubeconfig or in a pod), else none, and then only if host is a loopback address.',
  ),
  reportInterval: duration('10s', 'How often a NodeReport is sent.', 1000),
  heartbeatInterval: duration('15s', 'WebSocket ping interval; a peer silent for two intervals is dead.', 1000),
  reconnectMin: duration('500ms', 'First reconnection delay (exponential backoff with full jitter).', 10),
  reconnectMax: duration('30s', 'Longest reconnection delay.', 100),
  sendQueueReports: integer(6, 'Reports kept while the controller is slow or away; the oldest are dropped first.', 1, 1000),
  maxFrameBytes: integer(4 * 1024 * 1024, 'Largest fleet-link frame accepted, in bytes.', 1024),
  bpftracePath: string('bpftrace', 'bpftrace used by the profiler (a name looked up in PATH, or an absolute path).'),
  profileQueue: integer(8, 'Profile captures that may wait behind the running one on this node; more are refused (HTTP 429).', 0, 100),
  logLevel: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const, 'info', 'Log level.'),
  logFormat: oneOf(['json', 'pretty'] as const, 'json', 'Log format.'),
};

export type AgentConfig = ConfigOf<typeof agentSchema>;
