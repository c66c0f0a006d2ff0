// The admission webhook's throughput and latency, against a bare Node HTTPS server that
// answers an empty `allowed` review, measured in the same run on the same machine.
//
//   npx tsx bench/webhook/run.ts        (about a minute; loopback only)
//
// The controller runs in this process with every mutator on (labels, annotations, env,
// image, tolerations, resources ratio) and the dictionary in a real redis-server on
// loopback; each review writes the mutation log. The load comes from a separate process.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { availableParallelism, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../common/src/config.ts';
import { silentLogger } from '../../common/src/log.ts';
import { startController } from '../../controller/src/app.ts';
import { controllerSchema } from '../../controller/src/config.ts';
import { createAdmission, registerRoutes } from '../../controller/src/features.ts';
import { SharedTokenAgentAuthenticator } from '../../controller/src/fleet/auth.ts';
import { StaticTokenAuthenticator } from '../../controller/src/server/auth.ts';
import { startRedis } from '../../test/harness/redis.ts';
import { writeSection } from '../lib/results.ts';
import { measurePhases } from './phases.ts';

const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 6);
const RATE = 500;
const CONCURRENCY = 32;

/** A realistic Pod of a Deployment: two containers, sidecar, probes, volumes, every mutator with something to do. */
function pod(i: number): Record<string, unknown> {
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
    volumeMounts: [{ name: 'config', mountPath: '/etc/app' }, { name: 'kube-api-access', mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true }],
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
      initContainers: [{ name: 'migrate', image: 'registry.example.com:5000/shop/checkout:1.4.2', command: ['migrate'], env: [{ name: 'DATABASE_URL', value: 'nemu_env_db' }] }],
      volumes: [{ name: 'config', configMap: { name: 'checkout' } }, { name: 'kube-api-access', projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 3607 } }] } }],
      serviceAccountName: 'checkout',
      tolerations: [{ key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }],
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
    },
  };
}

function review(i: number): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', namespace: 'shop', userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' }, object: pod(i) },
  });
}

interface LoadResult {
  done: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
  /** CPU seconds the load process itself used. */
  cpuSeconds: number;
}

function load(url: string, mode: 'closed' | 'open', bodies: string[], seconds = SECONDS): Promise<LoadResult> {
  const child = fork(fileURLToPath(new URL('./load.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    child.once('message', (m) => {
      child.kill();
      resolve(m as LoadResult);
    });
    child.once('error', reject);
    child.send({ url, mode, concurrency: CONCURRENCY, rate: RATE, durationMs: seconds * 1000, bodies });
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nemu-bench-webhook-'));
  const redis = await startRedis();
  const { config } = loadConfig(controllerSchema, {
    program: 'bench',
    argv: [],
    env: {},
    defaults: { host: '127.0.0.1', stateDir: dir, webhookPort: 0, apiPort: 0, fleetPort: 0, metricsDefaults: false, dictionary: 'redis', redisUrl: redis.url, resourceRatio: 'cpu=4,memory=2', logLevel: 'warn' },
  });
  const c = await startController(config, { log: silentLogger, mode: 'local', apiAuth: new StaticTokenAuthenticator('t'), agentAuth: new SharedTokenAgentAuthenticator('x'), admission: createAdmission, routes: registerRoutes });
  const dict: Record<string, string> = {
    nemu_label_team: 'example.com/team',
    nemu_label_value_pay: 'payments',
    nemu_label_tier: 'example.com/tier',
    nemu_anno_contact: 'example.com/contact',
    nemu_anno_value_oncall: 'oncall-payments@example.com',
    nemu_env_db: 'postgres://db.shop.svc:5432/checkout',
    nemu_env_cache: 'redis://cache.shop.svc:6379/0',
    'nemu_image_shop/checkout': '1.4.3',
    nemu_image_envoy: `sha256:${'e'.repeat(64)}`,
    nemu_tolerations: JSON.stringify([{ match: { namespace: 'shop', labels: { 'example.com/team': 'payments' } }, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'payments', effect: 'NoSchedule' }] }]),
  };
  for (const [key, value] of Object.entries(dict)) {
    const r = await fetch(`${c.apiUrl}/dictionary/${encodeURIComponent(key)}`, { method: 'PUT', headers: { authorization: 'Bearer t' }, body: JSON.stringify({ value }) });
    if (!r.ok) throw new Error(`dictionary set ${key}: ${r.status}`);
  }
  const bare = createServer({ cert: c.tls.certPem, key: c.tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const uid = (JSON.parse(Buffer.concat(chunks).toString()) as { request: { uid: string } }).request.uid;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } }));
    });
  });
  await new Promise<void>((r) => bare.listen(0, '127.0.0.1', r));
  const bareUrl = `https://127.0.0.1:${(bare.address() as AddressInfo).port}/mutate`;

  const bodies = Array.from({ length: 256 }, (_, i) => review(i));
  // One check that the bench measures real mutation, not a pass-through.
  const probe = await load(c.webhookUrl, 'closed', bodies.slice(0, 1)).then(() => fetch(`${c.apiUrl}/mutations?limit=1`, { headers: { authorization: 'Bearer t' } }).then((r) => r.json() as Promise<{ items: Array<{ verbs: string[] }> }>));
  const verbs = probe.items[0]?.verbs.join(' ') ?? '(none)';

  const rows: string[] = [];
  const results: Record<string, { tput: LoadResult; lat: LoadResult; cpuUs: number }> = {};
  for (const [name, url] of [['bare Node HTTPS (baseline)', bareUrl], ['nemutator /mutate', c.webhookUrl]] as const) {
    await load(url, 'closed', bodies, 2); // warm-up: JIT, TLS sessions, caches
    // CPU of this process (the server under test; the load runs in its own process) per review.
    const cpu0 = process.cpuUsage();
    const tput = await load(url, 'closed', bodies);
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / Math.max(1, tput.done);
    const lat = await load(url, 'open', bodies);
    results[name] = { tput, lat, cpuUs };
    rows.push(`| ${name} | ${(tput.done / tput.seconds).toFixed(0)} | ${cpuUs.toFixed(0)} | ${((cpu.user + cpu.system) / 1e6 / tput.seconds).toFixed(2)} | ${(tput.cpuSeconds / tput.seconds).toFixed(2)} | ${pct(lat.latenciesMs, 50).toFixed(2)} | ${pct(lat.latenciesMs, 99).toFixed(2)} | ${tput.errors + lat.errors} |`);
  }
  const b = results['bare Node HTTPS (baseline)']!;
  const n = results['nemutator /mutate']!;
  const ratio = n.tput.done / n.tput.seconds / (b.tput.done / b.tput.seconds);
  const p99 = pct(n.lat.latenciesMs, 99);
  const phases = measurePhases(bodies, dict, { cpu: 4, memory: 2 });
  const inProcess = Object.values(phases.us).reduce((x, y) => x + y, 0);
  const now = new Date();
  const body = `
AdmissionReviews of a realistic Pod (2 containers + 1 init container, 4 nemu_ labels/annotations, 3 env placeholders, 2 enforced images, a toleration rule, requests from limits ÷ ratio; ${(bodies[0]!.length / 1024).toFixed(1)} KiB) with every mutator on and the dictionary in redis-server on loopback; every review writes the mutation log. Mutations applied per review: ${verbs}. Baseline: a bare Node HTTPS server answering an empty \`allowed\` review, measured in the same run. HTTP/1.1 keep-alive over TLS from a separate load process; after a 2 s warm-up; throughput with ${CONCURRENCY} concurrent requests for ${SECONDS} s; latency at a fixed ${RATE} reviews/s for ${SECONDS} s, from the scheduled send time. \`npx tsx bench/webhook/run.ts\`.

Machine: nproc ${availableParallelism()}, kernel ${release()}, Node ${process.version}, ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC. The load process shares the same cores.

| server | reviews/s | CPU per review (µs) | server CPU (cores) | load process CPU (cores) | p50 at ${RATE}/s (ms) | p99 at ${RATE}/s (ms) | errors |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

CPU per review is this process's user + system CPU over the throughput run (the load runs in another process) divided by the reviews answered; it includes TLS, HTTP, GC and, for nemutator, the mutation log written to Redis.

Where a review's CPU goes without HTTP (same process, no concurrency, ${phases.reviews} reviews, ${phases.ops} patch operations each): ${Object.entries(phases.us)
    .map(([k, v]) => `${k} ${v.toFixed(1)} µs`)
    .join(', ')}; ${inProcess.toFixed(0)} µs in all. decode is JSON.parse, which the baseline does too; keys gathers the dictionary keys, chain runs the eight mutators, diff makes the forward and reverse patches, verify applies the forward patch copy-on-write and compares, encode is the answer's base64 patch and the log entry's JSON.

Targets: throughput ≥ 0.5 × baseline (${ratio.toFixed(2)} ×: ${ratio >= 0.5 ? 'met' : '**missed**'}), p99 ≤ 5 ms at ${RATE} reviews/s (${p99.toFixed(2)} ms: ${p99 <= 5 ? 'met' : '**missed**'}).
`;
  writeSection('webhook', body);
  console.log(body);
  bare.close();
  await c.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}

await main();
