// The admission webhook's throughput and latency, against a bare Node HTTPS server that
// answers an empty `allowed` review, measured in the same run on the same machine; and, to
// read the ratio against, a ceiling server that answers nemutator's patches from a memo.
//
//   npx tsx bench/webhook/run.ts        (about a minute; loopback only)
//   BENCH_WEBHOOK_PROFILE=/tmp/webhook npx tsx bench/webhook/run.ts   (and CPU profiles of both
//   servers during their throughput runs: /tmp/webhook.bare.cpuprofile, /tmp/webhook.nemutator.cpuprofile)
//
// The controller runs in this process with every mutator on (labels, annotations, env,
// image, tolerations, resources ratio) and the dictionary in a real redis-server on
// loopback; each review writes the mutation log. The load comes from a separate process.
import { fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { availableParallelism, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import { startRedis } from '#test/harness/redis.js';

import { writeSection } from '../lib/results.ts';
import { ceilingServer } from './ceiling.ts';
import { DICTIONARY, review } from './fixture.ts';
import { measurePhases } from './phases.ts';

const SECONDS = Number(process.env.BENCH_WEBHOOK_SECONDS ?? 6);
const RATE = 500;
const CONCURRENCY = 32;

interface LoadResult {
  done: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
  /** CPU seconds the load process itself used. */
  cpuSeconds: number;
  /** CPU seconds this process (the server under test) used over the measured window only, warm-up excluded. */
  serverCpuSeconds: number;
}

function load(url: string, mode: 'closed' | 'open', bodies: string[], seconds = SECONDS): Promise<LoadResult> {
  const child = fork(fileURLToPath(new URL('./load.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    let cpu0: NodeJS.CpuUsage | undefined;
    child.on('message', (m) => {
      if ((m as { measuring?: boolean }).measuring) {
        cpu0 = process.cpuUsage();
        return;
      }
      const cpu = process.cpuUsage(cpu0);
      child.kill();
      resolve({ ...(m as Omit<LoadResult, 'serverCpuSeconds'>), serverCpuSeconds: (cpu.user + cpu.system) / 1e6 });
    });
    child.once('error', reject);
    child.send({
      url,
      mode,
      concurrency: CONCURRENCY,
      rate: RATE,
      durationMs: seconds * 1000,
      bodies,
      warmupMs: 1000,
      warmSockets: mode === 'closed' ? CONCURRENCY : 8,
    });
  });
}

/** A CPU profile of this process (the server under test), written as a .cpuprofile for DevTools. */
async function startProfile(): Promise<{ stop(file: string): Promise<void> }> {
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop(file) {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file, JSON.stringify(profile));
      session.disconnect();
      console.error(`CPU profile of the throughput run: ${file}`);
    },
  };
}

/**
 * What limited each throughput run: a process near one full core was the bottleneck (Node
 * answers on one thread; the load process is one too). On a machine with few cores the
 * baseline is usually bound by the load process, so the ratio compares nemutator's capacity
 * with the load generator's, not with the bare server's.
 */
function bound(bare: { tput: LoadResult; cpuUs: number }, nemu: { tput: LoadResult; cpuUs: number }): string {
  const cores = (r: { tput: LoadResult; cpuUs: number }) => ({
    server: (r.cpuUs * r.tput.done) / 1e6 / r.tput.seconds,
    load: r.tput.cpuSeconds / r.tput.seconds,
  });
  const what = (r: { tput: LoadResult; cpuUs: number }) => {
    const c = cores(r);
    return c.load >= 0.9 && c.load >= c.server
      ? 'the load process (one busy core)'
      : c.server >= 0.9
        ? 'the server itself (one busy core)'
        : "neither process alone (the machine's cores are shared)";
  };
  const capacity = 1e6 / nemu.cpuUs;
  return `The baseline run was bound by ${what(bare)}, nemutator's by ${what(nemu)}: at ${nemu.cpuUs.toFixed(0)} µs of CPU per review, one nemutator process answers at most ~${capacity.toFixed(0)} reviews/s per core, against ${(1e6 / bare.cpuUs).toFixed(0)} for the bare server.`;
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nemu-bench-webhook-'));
  const redis = await startRedis();
  const controller = (admissionMemoEntries: number, stateDir: string) => {
    const { config } = loadConfig(controllerSchema, {
      program: 'bench',
      argv: [],
      env: {},
      defaults: {
        host: '127.0.0.1',
        stateDir,
        webhookPort: 0,
        apiPort: 0,
        fleetPort: 0,
        schedulerPort: 0,
        metricsDefaults: false,
        dictionary: 'redis',
        redisUrl: redis.url,
        resourceRatio: 'cpu=4,memory=2',
        logLevel: 'warn',
        admissionMemoEntries,
      },
    });
    return startController(config, {
      log: silentLogger,
      mode: 'local',
      apiAuth: new StaticTokenAuthenticator('t'),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator('x'),
      ...controllerFeatures(),
    });
  };
  // The default (the chain memo on: the bench's Pods are replicas of 7 ReplicaSets, as
  // kube-apiserver sends them), and the same with the memo off: every review runs the chain.
  const c = await controller(controllerSchema.admissionMemoEntries.default, dir);
  mkdirSync(join(dir, 'memo-off'));
  const cold = await controller(0, join(dir, 'memo-off'));
  const dict = DICTIONARY;
  for (const [key, value] of Object.entries(dict)) {
    const r = await fetch(`${c.apiUrl}/dictionary/${encodeURIComponent(key)}`, {
      method: 'PUT',
      headers: { authorization: 'Bearer t' },
      body: JSON.stringify({ value }),
    });
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
  const ceiling = ceilingServer({ cert: c.tls.certPem, key: c.tls.keyPem }, bodies, dict, { cpu: 4, memory: 2 });
  await new Promise<void>((r) => ceiling.listen(0, '127.0.0.1', r));
  const ceilingUrl = `https://127.0.0.1:${(ceiling.address() as AddressInfo).port}/mutate`;
  // One check that the bench measures real mutation, not a pass-through.
  const probe = await load(c.webhookUrl, 'closed', bodies.slice(0, 1)).then(() =>
    fetch(`${c.apiUrl}/mutations?limit=1`, { headers: { authorization: 'Bearer t' } }).then((r) => r.json() as Promise<{ items: Array<{ verbs: string[] }> }>),
  );
  const verbs = probe.items[0]?.verbs.join(' ') ?? '(none)';

  const rows: string[] = [];
  const results: Record<string, { tput: LoadResult; lat: LoadResult; cpuUs: number }> = {};
  const servers = [
    ['bare Node HTTPS (baseline)', bareUrl],
    ['ceiling: decode + memoized patch', ceilingUrl],
    ['nemutator /mutate', c.webhookUrl],
    ['nemutator, chain memo off', cold.webhookUrl],
  ] as const;
  for (const [name, url] of servers) {
    await load(url, 'closed', bodies, 2); // warm-up: JIT, TLS sessions, caches
    // CPU of this process (the server under test; the load runs in its own process) per review,
    // over the measured window only: the load's 1 s warm-up is not divided by the measured reviews.
    const profiling = process.env.BENCH_WEBHOOK_PROFILE ? await startProfile() : undefined;
    const tput = await load(url, 'closed', bodies);
    if (profiling)
      await profiling.stop(
        process.env.BENCH_WEBHOOK_PROFILE!.replace(
          /(\.cpuprofile)?$/,
          url === c.webhookUrl
            ? '.nemutator.cpuprofile'
            : url === cold.webhookUrl
              ? '.nemutator-memo-off.cpuprofile'
              : url === ceilingUrl
                ? '.ceiling.cpuprofile'
                : '.bare.cpuprofile',
        ),
      );
    const cpuUs = (tput.serverCpuSeconds * 1e6) / Math.max(1, tput.done);
    const lat = await load(url, 'open', bodies);
    results[name] = { tput, lat, cpuUs };
    rows.push(
      `| ${name} | ${(tput.done / tput.seconds).toFixed(0)} | ${cpuUs.toFixed(0)} | ${(tput.serverCpuSeconds / tput.seconds).toFixed(2)} | ${(tput.cpuSeconds / tput.seconds).toFixed(2)} | ${pct(lat.latenciesMs, 50).toFixed(2)} | ${pct(lat.latenciesMs, 99).toFixed(2)} | ${tput.errors + lat.errors} |`,
    );
  }
  const b = results['bare Node HTTPS (baseline)']!;
  const n = results['nemutator /mutate']!;
  const ratio = n.tput.done / n.tput.seconds / (b.tput.done / b.tput.seconds);
  const ce = results['ceiling: decode + memoized patch']!;
  const off = results['nemutator, chain memo off']!;
  const offRatio = off.tput.done / off.tput.seconds / (b.tput.done / b.tput.seconds);
  const ceilingRatio = ce.tput.done / ce.tput.seconds / (b.tput.done / b.tput.seconds);
  const p99 = pct(n.lat.latenciesMs, 99);
  const phases = measurePhases(bodies, dict, { cpu: 4, memory: 2 });
  const inProcess = Object.values(phases.us).reduce((x, y) => x + y, 0);
  const now = new Date();
  const body = `
AdmissionReviews of a realistic Pod (2 containers + 1 init container, 4 nemu_ labels/annotations, 3 env placeholders, 2 enforced images, a toleration rule, requests from limits ÷ ratio; ${(bodies[0]!.length / 1024).toFixed(1)} KiB) with every mutator on and the dictionary in redis-server on loopback; every review writes the mutation log. Mutations applied per review: ${verbs}. Baseline: a bare Node HTTPS server answering an empty \`allowed\` review, measured in the same run. HTTP/1.1 keep-alive over TLS from a separate load process; after a 2 s warm-up, and in every measured run 1 s on the same connections first (32 for throughput, 8 for latency; more are opened if a run needs them), so the windows measure reviews on open connections as kube-apiserver keeps them, not TLS handshakes; throughput with ${CONCURRENCY} concurrent requests for ${SECONDS} s; latency at a fixed ${RATE} reviews/s for ${SECONDS} s, from the scheduled send time. \`npx tsx bench/webhook/run.ts\`.

Machine: nproc ${availableParallelism()}, kernel ${release()}, Node ${process.version}, ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC. The load process shares the same cores.

| server | reviews/s | CPU per review (µs) | server CPU (cores) | load process CPU (cores) | p50 at ${RATE}/s (ms) | p99 at ${RATE}/s (ms) | errors |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}

The 256 reviews are replicas of 7 ReplicaSets (as kube-apiserver sends them: a Pod has no name at admission, so the replicas of one ReplicaSet are one object), each with its own uid. \`nemutator /mutate\` runs as installed: its chain memo answers a replica as the chain answered the first, after checking that every dictionary value and recommendation it read is unchanged. \`chain memo off\` (\`admissionMemoEntries: 0\`) runs the chain for every review, as for a stream of all-different objects: ${offRatio.toFixed(2)} × the baseline.

The ceiling row is the cheapest server that answers as nemutator does (\`bench/webhook/ceiling.ts\`): nemutator's decoder, then the patch the chain computed for that object beforehand, looked up by the object's JSON (a perfect memo: no mutator, diff, verification or dictionary), a fresh mutation id, the answer and the log entry's JSON, written nowhere. It reached ${ceilingRatio.toFixed(2)} × the baseline: on this machine that is about as far as a Node webhook that answers with a patch and logs it can go. Nemutator spent ${(n.cpuUs - ce.cpuUs).toFixed(0)} µs per review more than the ceiling when its memo answered (reading the skip rules, dictionary values and recommendations again to check the memo, the log's write to Redis, metrics), and ${(off.cpuUs - ce.cpuUs).toFixed(0)} µs more with the memo off, where the chain, diff and verification alone cost ${(phases.us.keys + phases.us.chain + phases.us.diff + phases.us.verify).toFixed(0)} µs without HTTP in a tight loop (below).

CPU per review is this process's user + system CPU over the throughput run (the load runs in another process) divided by the reviews answered; it includes TLS, HTTP, GC and, for nemutator, the mutation log written to Redis. ${bound(b, n)}

Where a review's CPU goes without HTTP (same process, no concurrency, ${phases.reviews} reviews, ${phases.ops} patch operations each): ${Object.entries(
    phases.us,
  )
    .map(([k, v]) => `${k} ${v.toFixed(1)} µs`)
    .join(
      ', ',
    )}; ${inProcess.toFixed(0)} µs in all. decode is JSON.parse, which the baseline does too; keys gathers the dictionary keys, chain runs the eight mutators, diff makes the forward and reverse patches, verify applies the forward patch copy-on-write and compares, encode is the answer's base64 patch and the log entry's JSON.

Targets: throughput ≥ 0.5 × baseline (${ratio.toFixed(2)} ×: ${ratio >= 0.5 ? 'met' : '**missed**'}), p99 ≤ 5 ms at ${RATE} reviews/s (${p99.toFixed(2)} ms: ${p99 <= 5 ? 'met' : '**missed**'}).
`;
  writeSection('webhook', body);
  console.log(body);
  bare.close();
  ceiling.close();
  await c.stop();
  await cold.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}

await main();
