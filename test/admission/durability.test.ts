// Durable before answered, and outage bounds, against real processes: the controller in its
// own process (kill -9 mid-load), a real redis-server (refusing writes, stopped), reviews at
// 300 per second over HTTPS. Every mutation id the webhook hands out must be in the log.
import { get } from 'node:https';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';

import { LevelStore } from '#controller/store/level.js';
import { RedisStore } from '#controller/store/redis.js';

import { type Answer, type ControllerProcess, type ReviewLoad, startControllerProcess, startReviewLoad } from '../harness/controller-process.ts';
import { type RedisServer, startRedis } from '../harness/redis.ts';
import { until } from '../harness/wait.ts';

const RATE = 300;
const RUNS = 5;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function controller(args: string[] = [], stateDir?: string): Promise<ControllerProcess> {
  const c = await startControllerProcess(args, stateDir);
  cleanups.push(() => c.kill());
  return c;
}

async function redis(): Promise<RedisServer> {
  const r = await startRedis();
  cleanups.push(() => r.stop());
  return r;
}

/** The dictionary key the load's Pods carry: every review is mutated while it is set. */
async function setTeamKey(c: ControllerProcess): Promise<void> {
  const res = await c.api('/api/v1/dictionary/nemu_label_team', { method: 'PUT', body: { value: 'example.com/team' } });
  expect(res.status).toBe(200);
}

/** The webhook port's /metrics page (HTTPS with the controller's CA). */
function webhookMetrics(c: ControllerProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    get(c.webhookUrl.replace(/\/mutate$/, '/metrics'), { ca: c.ca, headers: { authorization: `Bearer ${c.token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
}

function p99(ms: number[]): number {
  const sorted = [...ms].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? 0;
}

/**
 * The p99 of 2 s of healthy reviews, once (nearly) all of them are answered. Bounds on a fault
 * are this plus the product's own budget: on a loaded machine every answer waits in queues that
 * have nothing to do with the fault (the healthy p99 itself was 0.5 s at load 7).
 */
async function healthyP99(load: ReviewLoad): Promise<number> {
  const from = Date.now();
  await until('2 s of healthy load', () => Date.now() - from > 2000, 5000, 50);
  const to = Date.now();
  const answered = await until(
    'the healthy window answered',
    () => {
      const a = load.answers.filter((x) => x.sentAt >= from && x.sentAt < to);
      return a.length >= RATE * 1.8 ? a : undefined;
    },
    30_000,
    50,
  );
  return p99(answered.map((a) => a.ms));
}

/** Ids answered that are not in the store: must be none. */
async function missing(ids: string[], has: (key: string) => Promise<boolean>): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) if (!(await has(`mutations/${id}`))) out.push(id);
  return out;
}

/** Load at RATE until `answered` ids came back (at least 1.5 s of it), then kill -9 with reviews in flight. */
async function killUnderLoad(c: ControllerProcess): Promise<{ ids: string[]; answers: Answer[] }> {
  const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
  const started = Date.now();
  await until('reviews answered with mutation ids', () => Date.now() - started > 1500 && load.answers.filter((a) => a.id).length >= 300, 20_000);
  await c.kill();
  await load.stop();
  const ids = load.answers.flatMap((a) => (a.id ? [a.id] : []));
  console.log(`kill -9 after ${((Date.now() - started) / 1000).toFixed(1)} s: ${ids.length} mutation ids answered, ${load.failed} reviews cut off by the kill`);
  return { ids, answers: load.answers };
}

describe('durable before answered: kill -9 under load', () => {
  it(`embedded store: ${RUNS} runs at ${RATE} reviews/s, 0 answered mutation ids missing from the log after the crash`, async () => {
    const c0 = await controller();
    await setTeamKey(c0);
    const stateDir = c0.stateDir;
    await c0.kill();
    let total = 0;
    for (let run = 0; run < RUNS; run++) {
      const c = await controller([], stateDir);
      const { ids, answers } = await killUnderLoad(c);
      expect(ids.length, `run ${run}: answers ${answers.length}`).toBeGreaterThanOrEqual(300);
      const store = await LevelStore.open(join(stateDir, 'store'));
      try {
        expect(await missing(ids, async (k) => (await store.get(k)) !== undefined), `run ${run}`).toEqual([]);
      } finally {
        await store.close();
      }
      total += ids.length;
    }
    // and the restarted controller serves them
    const c = await controller([], stateDir);
    expect(((await (await c.api('/api/v1/mutations?limit=1000')).json()) as { items: unknown[] }).items.length).toBeGreaterThanOrEqual(Math.min(total, 1000));
  }, 240_000);

  it(`Redis store: ${RUNS} runs at ${RATE} reviews/s, 0 answered mutation ids missing from the log after the crash`, async () => {
    const r = await redis();
    const args = ['--store', 'redis', '--redis-url', r.url];
    for (let run = 0; run < RUNS; run++) {
      const c = await controller(args);
      if (run === 0) await setTeamKey(c);
      const { ids, answers } = await killUnderLoad(c);
      expect(ids.length, `run ${run}: answers ${answers.length}`).toBeGreaterThanOrEqual(300);
      const store = await RedisStore.open(r.url);
      try {
        expect(await missing(ids, async (k) => (await store.get(k)) !== undefined), `run ${run}`).toEqual([]);
      } finally {
        await store.close();
      }
    }
  }, 240_000);
});

describe('the mutation log cannot be written', () => {
  it('Redis refusing writes under load: reviews admitted unmutated with NEMU_ERR_MUTATION_LOG, not ready within 2 s, mutating again within 2 s of recovery, 0 answered ids missing', async () => {
    const r = await redis();
    const c = await controller(['--store', 'redis', '--redis-url', r.url]);
    await setTeamKey(c);
    const admin = new Redis(r.url);
    cleanups.push(async () => admin.disconnect());
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    await until('mutated answers', () => load.answers.filter((a) => a.id).length >= 100);
    // 2 s is the product's budget for each transition; what a loaded machine adds to every
    // answer (the healthy p99 of this run) comes on top for the ones measured by answers.
    const healthy = await healthyP99(load);

    // Redis now refuses every write (no replica), reads still work
    await admin.config('SET', 'min-replicas-to-write', '1');
    const faultAt = Date.now();
    await until('/readyz to answer 503', async () => (await fetch(`${c.apiUrl}/readyz`)).status === 503, 2000 + healthy, 20);
    const notReadyAfter = Date.now() - faultAt;
    const status = (await (await c.api('/api/v1/status')).json()) as { components: { store: string } };
    expect(status.components.store).toMatch(/^failing since .*NOREPLICAS/);
    expect(await webhookMetrics(c)).toMatch(/^nemutator_mutation_log_write_failures_total [1-9]/m);
    await until('a second of reviews during the fault', () => Date.now() - faultAt > 1500);

    await admin.config('SET', 'min-replicas-to-write', '0');
    const recoveredAt = Date.now();
    await until('a mutated answer after recovery', () => load.answers.some((a) => a.sentAt > recoveredAt && a.id), 2000 + healthy, 20);
    // the first review sent after recovery that came back mutated was sent within 2 s of it
    const mutatingAfter = Math.min(...load.answers.filter((a) => a.sentAt > recoveredAt && a.id).map((a) => a.sentAt)) - recoveredAt;
    expect(mutatingAfter).toBeLessThanOrEqual(2000);
    await until('/readyz ready again', async () => (await fetch(`${c.apiUrl}/readyz`)).status === 200, 2000 + healthy, 20);
    await load.stop();

    // during the fault (after the first refusal reached the controller, before recovery): unmutated, with the warning
    const during = load.answers.filter((a) => a.sentAt > faultAt + 200 && a.sentAt + a.ms < recoveredAt);
    expect(during.length).toBeGreaterThan(200);
    for (const a of during) {
      expect(a.patched).toBe(false);
      expect(a.warnings.join('\n')).toContain('NEMU_ERR_MUTATION_LOG');
    }
    const ids = load.answers.flatMap((a) => (a.id ? [a.id] : []));
    const store = await RedisStore.open(r.url);
    cleanups.push(() => store.close());
    expect(await missing(ids, async (k) => (await store.get(k)) !== undefined)).toEqual([]);
    const failures = await (await c.api('/api/v1/status')).json();
    expect(failures).toMatchObject({ components: { store: 'open' } });
    console.log(
      `refusing writes: not ready ${notReadyAfter} ms after the fault; mutating ${mutatingAfter} ms after recovery; ${during.length} reviews admitted unmutated; ${ids.length} ids answered, 0 missing`,
    );
  }, 60_000);

  // The 300 ms target is measured by bench/faults on a quiet machine; here the bound is
  // relative to the same run's healthy p99 (this 2-core VM is often shared), and well under
  // the 2 s a review waited for the store client's own timeout before the shared deadline.
  it('Redis stopped under load: reviews wait at most the shared deadline beyond a healthy review, at most one log line per second about it', async () => {
    const r = await redis();
    const c = await controller(['--store', 'redis', '--redis-url', r.url]);
    await setTeamKey(c);
    const load = startReviewLoad(c.webhookUrl, c.ca, RATE);
    await until('mutated answers', () => load.answers.filter((a) => a.id).length >= 100);
    const healthy = await healthyP99(load);
    await r.stop();
    const downAt = Date.now();
    await until('5 s of outage', () => Date.now() - downAt > 5000, 10_000, 100);
    const upAt = Date.now();
    await load.stop();
    const during = load.answers.filter((a) => a.sentAt >= downAt && a.sentAt < upAt);
    expect(during.length).toBeGreaterThan(RATE * 4);
    expect(during.every((a) => !a.patched)).toBe(true);
    const worst = p99(during.map((a) => a.ms));
    const lines = c.logs.filter((l) => l.at >= downAt && l.at <= upAt + 500);
    const seconds = (upAt + 500 - downAt) / 1000;
    console.log(
      `redis stopped: ${during.length} reviews, p99 ${worst} ms (healthy p99 ${healthy} ms); ${lines.length} log lines in ${seconds.toFixed(1)} s: ${[...new Set(lines.map((l) => l.line.msg ?? l.line.raw))].join(' | ')}`,
    );
    // The shared deadline (200 ms) at most twice beyond a healthy review of the same run.
    expect(worst).toBeLessThanOrEqual(Math.max(300, healthy + 2 * 200));
    expect(lines.length).toBeLessThanOrEqual(Math.floor(seconds));
    for (const l of lines) expect(JSON.stringify(l.line)).not.toMatch(/\n\s+at /);
  }, 60_000);
});
