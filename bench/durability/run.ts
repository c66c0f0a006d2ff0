// What "durable before answered" costs: the webhook answering only once a review's mutation
// log entry is written (group commit before the answer), against the same webhook with no
// mutation log at all, measured in the same run. Log in the embedded store (LevelDB, one
// fsync per group commit) and in redis-server on loopback.
//
//   npx tsx bench/durability/run.ts        (about a minute; loopback only)
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { loadConfig } from '#common/config.js';
import { silentLogger } from '#common/log.js';
import { createAdmissionHandler } from '#controller/admission/handler.js';
import { SkipRules } from '#controller/admission/skip-rules.js';
import { type ControllerParts, startController } from '#controller/app.js';
import { controllerSchema } from '#controller/config.js';
import { openDictionary } from '#controller/dictionary/open.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { DEFAULT_CHAIN } from '#controller/mutators/chain.js';
import { RatioSource } from '#controller/mutators/resources.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';
import { startRedis } from '#test/harness/redis.js';

import { writeSection } from '../lib/results.ts';
import { DICTIONARY, review } from '../webhook/fixture.ts';

const SECONDS = Number(process.env.BENCH_DURABILITY_SECONDS ?? 5);
const CONCURRENCY = 32;

interface LoadResult {
  done: number;
  errors: number;
  seconds: number;
  latenciesMs: number[];
}

function load(url: string, mode: 'closed' | 'open', bodies: string[], rate: number, seconds = SECONDS): Promise<LoadResult> {
  const child = fork(fileURLToPath(new URL('../webhook/load.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'] });
  return new Promise((resolve, reject) => {
    child.on('message', (m) => {
      // The load says when its warm-up ends (bench/webhook times its CPU from there); the result follows.
      if ((m as { measuring?: boolean }).measuring) return;
      child.kill();
      resolve(m as LoadResult);
    });
    child.once('error', reject);
    child.send({
      url,
      mode,
      concurrency: CONCURRENCY,
      rate,
      durationMs: seconds * 1000,
      bodies,
      warmupMs: 1000,
      warmSockets: mode === 'closed' ? CONCURRENCY : 8,
    });
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

/** The admission handler of `createFeatures`, without a mutation log: the baseline. */
async function unlogged(parts: ControllerParts) {
  const dictionary = await openDictionary(parts.config, parts.store, parts.log);
  parts.onStop(() => dictionary.close());
  return createAdmissionHandler({
    log: silentLogger,
    dictionary,
    skipRules: new SkipRules(parts.store),
    chain: DEFAULT_CHAIN,
    ratio: new RatioSource({ cpu: 4, memory: 2 }),
    deadlineMs: parts.config.dictionaryTimeout,
  });
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nemu-bench-durability-'));
  const redis = await startRedis();
  const start = (name: string, store: 'embedded' | 'redis', logged: boolean) => {
    const { config } = loadConfig(controllerSchema, {
      program: 'bench',
      argv: [],
      env: {},
      defaults: {
        host: '127.0.0.1',
        stateDir: join(dir, name),
        webhookPort: 0,
        apiPort: 0,
        fleetPort: 0,
        schedulerPort: 0,
        metricsDefaults: false,
        store,
        dictionary: 'redis',
        redisUrl: redis.url,
        resourceRatio: 'cpu=4,memory=2',
        logLevel: 'warn',
      },
    });
    return startController(config, {
      log: silentLogger,
      mode: 'local',
      apiAuth: new StaticTokenAuthenticator('t'),
      authorizer: localAuthorizer,
      agentAuth: new SharedTokenAgentAuthenticator('x'),
      ...(logged ? controllerFeatures() : { admission: unlogged }),
    });
  };
  const variants = [
    ['no mutation log (baseline)', await start('none', 'embedded', false)],
    ['log in the embedded store (LevelDB, fsync)', await start('level', 'embedded', true)],
    ['log in Redis (loopback)', await start('redis', 'redis', true)],
  ] as const;
  const c = variants[1][1];
  for (const [key, value] of Object.entries(DICTIONARY)) {
    const r = await fetch(`${c.apiUrl}/dictionary/${encodeURIComponent(key)}`, {
      method: 'PUT',
      headers: { authorization: 'Bearer t' },
      body: JSON.stringify({ value }),
    });
    if (!r.ok) throw new Error(`dictionary set ${key}: ${r.status}`);
  }
  const bodies = Array.from({ length: 256 }, (_, i) => review(i));
  const rows: string[] = [];
  const base: Record<string, number> = {};
  for (const [name, ctl] of variants) {
    await load(ctl.webhookUrl, 'closed', bodies, 0, 2); // warm-up
    const tput = await load(ctl.webhookUrl, 'closed', bodies, 0);
    const at300 = await load(ctl.webhookUrl, 'open', bodies, 300);
    const at500 = await load(ctl.webhookUrl, 'open', bodies, 500);
    const m = {
      tput: tput.done / tput.seconds,
      p50a: pct(at300.latenciesMs, 50),
      p99a: pct(at300.latenciesMs, 99),
      p50b: pct(at500.latenciesMs, 50),
      p99b: pct(at500.latenciesMs, 99),
      p50c: pct(tput.latenciesMs, 50),
    };
    if (rows.length === 0) Object.assign(base, m);
    const vs = (k: keyof typeof m) => (rows.length === 0 ? '' : ` (${(m[k] / base[k]!).toFixed(2)} ×)`);
    rows.push(
      `| ${name} | ${m.tput.toFixed(0)}${vs('tput')} | ${m.p50c.toFixed(2)}${vs('p50c')} | ${m.p50a.toFixed(2)} | ${m.p99a.toFixed(2)}${vs('p99a')} | ${m.p50b.toFixed(2)} | ${m.p99b.toFixed(2)}${vs('p99b')} | ${tput.errors + at300.errors + at500.errors} |`,
    );
  }
  const body = `
Durable before answered: a review that hands out a mutation id is answered only once its mutation-log entry is written (a group commit before the answer: a write starts as soon as one entry waits and none is in progress; entries arriving meanwhile share the next write). Same controller, same reviews as the webhook bench (every mutator on, dictionary in redis-server, chain memo on), with no mutation log at all as the baseline, in the same run. HTTP/1.1 keep-alive over TLS from a separate load process; throughput with ${CONCURRENCY} concurrent requests for ${SECONDS} s (p50 is under that load); latency at fixed rates for ${SECONDS} s each, from the scheduled send time. \`npx tsx bench/durability/run.ts\`.

Machine: nproc ${availableParallelism()}, kernel ${release()}, Node ${process.version}, ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC; load average at the end ${(await import('node:os')).loadavg()[0]!.toFixed(1)} (shared with other work: noisy).

| mutation log | reviews/s (32 concurrent) | p50 at 32 concurrent (ms) | p50 at 300/s (ms) | p99 at 300/s (ms) | p50 at 500/s (ms) | p99 at 500/s (ms) | errors |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.join('\n')}
`;
  writeSection('durability', body);
  console.log(body);
  for (const [, ctl] of variants) await ctl.stop();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}

await main();
