// What the fault scenarios share: the controller process and review load come from the test
// harness (test/harness/controller-process.ts); this adds the measurements a row needs.
import { readFileSync } from 'node:fs';

import { RedisStore } from '#controller/store/redis.js';
import type { Answer, ControllerProcess, ReviewLoad } from '#test/harness/controller-process.js';
import { percentile } from '#test/harness/hostile-reviews.js';
import { until } from '#test/harness/wait.js';

import type { FaultRow } from './row.ts';

/** Reviews per second of the load in the scenarios that run one (the figure). */
export const RATE = 300;

/** The dictionary key the load's Pods carry: every review is mutated while it is set. */
export async function setTeamKey(c: ControllerProcess): Promise<void> {
  const res = await c.api('/api/v1/dictionary/nemu_label_team', { method: 'PUT', body: { value: 'example.com/team' } });
  if (res.status !== 200) throw new Error(`PUT dictionary/nemu_label_team answered ${res.status}: ${await res.text()}`);
}

/** Peak resident set size of a process so far, in MiB (VmHWM); 0 once it is gone. */
export function peakRssMiB(pid: number | undefined): number {
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The process exited on its own (not by our kill -9)? */
export function crashed(c: ControllerProcess): boolean {
  return c.child.exitCode !== null || (c.child.signalCode !== null && c.child.signalCode !== 'SIGKILL');
}

export interface Latency {
  n: number;
  p50: number;
  p99: number;
}

export function latency(answers: Answer[]): Latency {
  const ms = answers.map((a) => a.ms);
  return { n: ms.length, p50: percentile(ms, 50), p99: percentile(ms, 99) };
}

/** Answers whose review was sent in [from, to). */
export function sentBetween(answers: Answer[], from: number, to: number): Answer[] {
  return answers.filter((a) => a.sentAt >= from && a.sentAt < to);
}

/** The mutation ids of `answers`. */
export function ids(answers: Answer[]): string[] {
  return answers.flatMap((a) => (a.id ? [a.id] : []));
}

/** Ids answered that a store does not hold (`has` gets the store key). */
export async function missing(list: string[], has: (key: string) => Promise<boolean>): Promise<string[]> {
  const out: string[] = [];
  for (const id of list) if (!(await has(`mutations/${id}`))) out.push(id);
  return out;
}

/** Ids the controller's REST API cannot find (`GET /api/v1/mutations/{id}` not 200), 32 at a time. */
export async function missingViaApi(c: ControllerProcess, list: string[]): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 32) {
    const batch = list.slice(i, i + 32);
    const statuses = await Promise.all(batch.map((id) => c.api(`/api/v1/mutations/${id}`).then((r) => r.status)));
    statuses.forEach((s, j) => s !== 200 && out.push(batch[j]!));
  }
  return out;
}

/**
 * The baseline window of a scenario: once the load is warm (the first 100 mutated answers:
 * TLS handshakes and JIT are behind it), `ms` of the same load before the fault.
 */
export async function baselineWindow(load: ReviewLoad, ms = 1500): Promise<{ from: number; to: number }> {
  await until('the load to warm up (100 mutated answers)', () => load.answers.filter((a) => a.id).length >= 100, 30_000, 20);
  const from = Date.now();
  await until(`${ms} ms of baseline load`, () => Date.now() - from >= ms, ms + 10_000, 20);
  return { from, to: Date.now() };
}

/**
 * The row of a scenario that ran review load at controller `c`: the load's counts, the
 * latency during the fault against the same load's baseline, the process's peak RSS.
 */
export function loadRow(
  c: ControllerProcess,
  load: Pick<ReviewLoad, 'answers' | 'failed'>,
  during: Latency,
  baseline: Latency,
  row: { scenario: string; lost: number; recoverSeconds: number; notes: string },
): FaultRow {
  return {
    scenario: row.scenario,
    reviewsAnswered: load.answers.length,
    reviewsSent: load.answers.length + load.failed,
    lost: row.lost,
    crashes: crashed(c) ? 1 : 0,
    p50: during.p50,
    p99: during.p99,
    baselineP50: baseline.p50,
    baselineP99: baseline.p99,
    rssPeakMiB: peakRssMiB(c.child.pid),
    recoverSeconds: row.recoverSeconds,
    notes: row.notes,
  };
}

/** How many of `answered` the store in Redis at `url` does not hold. */
export async function missingInRedis(url: string, answered: string[]): Promise<number> {
  const store = await RedisStore.open(url);
  try {
    return (await missing(answered, async (k) => (await store.get(k)) !== undefined)).length;
  } finally {
    await store.close();
  }
}
