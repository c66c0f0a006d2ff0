// A Redis Sentinel failover under admission load, with Debian's real redis-sentinel: a master,
// two replicas and three sentinels (down-after-milliseconds 1000). The controller finds the
// master through the sentinels (redisSentinels, redisMasterName) and counts a mutation-log
// write only once a replica holds it (redisWaitReplicas 1). Pods are reviewed at a steady
// rate; the master is killed with SIGKILL. What a user would notice:
// - admission mutates again within 10 s of the master's death (reviews in between are
//   admitted unmutated: the webhook fails open);
// - every mutation id the webhook handed out (the pod's nemutator.io/mutation label) can be
//   read from the mutation log afterwards: none was lost with the old master.
// The second needs both halves: WAIT (the store counts a write only once a replica has it)
// and the mutation log written before the webhook answers (a review whose entry cannot be
// written is admitted unmutated). With a log written after the answer, reviews answered in
// the instant before the client notices the dead master carry ids that were never written.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fjp, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';
import { type RunningController, startController } from '#controller/app.js';
import { controllerFeatures } from '#controller/features.js';
import { SharedTokenAgentAuthenticator } from '#controller/fleet/auth.js';
import { localAuthorizer } from '#controller/server/access.js';
import { StaticTokenAuthenticator } from '#controller/server/auth.js';

import { insecureAgent, post } from '../admission/https.ts';
import { testControllerConfig } from '../harness/controller.ts';
import { type SentinelGroup, startSentinelGroup } from '../harness/sentinel.ts';
import { until } from '../harness/wait.ts';

const RATE = 100; // reviews per second
const MAX_IN_FLIGHT = 128;
const TOKEN = 't';

let group: SentinelGroup;
let c: RunningController;
let dir: string;
const agent = insecureAgent();

beforeAll(async () => {
  group = await startSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 2000 });
  dir = mkdtempSync(join(tmpdir(), 'nemu-failover-'));
  const config = testControllerConfig({
    stateDir: dir,
    redisSentinels: group.sentinelList,
    redisMasterName: group.masterName,
    redisKeyPrefix: `failover-${randomUUID()}:`,
    // A replica must hold each group of log entries; the bound is generous because this
    // machine is shared (what WAIT costs is measured in bench/redis-wait).
    redisWaitReplicas: 1,
    redisWaitTimeout: 1000, // ms (defaults are not parsed)
    apiRateLimit: 0, // the check afterwards reads every id
  });
  c = await startController(config, {
    log: silentLogger,
    mode: 'local',
    apiAuth: new StaticTokenAuthenticator(TOKEN),
    authorizer: localAuthorizer,
    agentAuth: new SharedTokenAgentAuthenticator('x'),
    ...controllerFeatures(),
  });
  const put = await fetch(`${c.apiUrl}/dictionary/nemu_label_team`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ value: 'example.com/team' }),
  });
  expect(put.status).toBe(200);
}, 90_000);
afterAll(async () => {
  agent.destroy();
  await c?.stop();
  await group?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  seq: number;
  sentAt: number;
  answeredAt: number;
  /** The mutation id the webhook handed out (the patched pod's label), if it mutated. */
  id?: string;
  error?: string;
}

function podReview(seq: number): { body: string; pod: Record<string, unknown> } {
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `p-${seq}`, namespace: 'shop', labels: { nemu_label_team: 'payments' } },
    spec: { containers: [{ name: 'app', image: 'busybox:1' }] },
  };
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: randomUUID(),
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      operation: 'CREATE',
      namespace: 'shop',
      name: `p-${seq}`,
      object: pod,
      userInfo: { username: 'test' },
    },
  });
  return { body, pod };
}

/** Reviews at RATE per second until stopped; every answer is kept in send order. */
function driveLoad(): { answers: Answer[]; stop(): Promise<void> } {
  const answers: Answer[] = [];
  const pending = new Set<Promise<void>>();
  let stopped = false;
  const started = Date.now();
  let seq = 0;
  const tick = (): void => {
    if (stopped) return;
    // Catch up to the schedule (timers on a busy machine fire late), without exceeding the cap.
    const due = Math.floor(((Date.now() - started) * RATE) / 1000);
    while (seq < due && pending.size < MAX_IN_FLIGHT) {
      const n = seq++;
      const { body, pod } = podReview(n);
      const sentAt = Date.now();
      const p = post(c.webhookUrl, body, agent).then(
        (res) => {
          const a: Answer = { seq: n, sentAt, answeredAt: Date.now() };
          const review = JSON.parse(res.body) as { response?: { allowed?: boolean; patch?: string } };
          if (res.status !== 200 || review.response?.allowed !== true) a.error = `HTTP ${res.status}: ${res.body.slice(0, 200)}`;
          else if (review.response.patch) {
            const ops = JSON.parse(Buffer.from(review.response.patch, 'base64').toString('utf8')) as Operation[];
            const patched = fjp.applyPatch(structuredClone(pod), ops, false, false).newDocument as { metadata: { labels: Record<string, string> } };
            a.id = patched.metadata.labels['nemutator.io/mutation'];
            if (!a.id || patched.metadata.labels['example.com/team'] !== 'payments')
              a.error = `mutated without the expected label or id: ${JSON.stringify(patched.metadata.labels)}`;
          }
          answers.push(a);
        },
        (e: Error) => void answers.push({ seq: n, sentAt, answeredAt: Date.now(), error: e.message }),
      );
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    setTimeout(tick, 1000 / RATE);
  };
  tick();
  return {
    answers,
    async stop() {
      stopped = true;
      await Promise.all([...pending]);
      answers.sort((a, b) => a.seq - b.seq);
    },
  };
}

describe('Redis Sentinel failover under admission load', () => {
  it('admission resumes mutating within 10 s of the master’s death, and no answered mutation id is lost', async () => {
    const load = driveLoad();
    let stopped = false;
    try {
      await until('50 mutated reviews before the failover', () => load.answers.filter((a) => a.id).length >= 50, 20_000);
      const oldMaster = await group.masterPort();
      const killedAt = Date.now();
      await group.kill(oldMaster);

      // Resumed = a new master is named and the last 20 reviews sent after the kill were all
      // mutated; recovery is measured to the answer of the first review of that run.
      const resumedAt = await until(
        'admission to mutate again on the new master',
        async () => {
          if ((await group.masterPort().catch(() => oldMaster)) === oldMaster) return false;
          const after = load.answers.filter((a) => a.sentAt > killedAt).sort((a, b) => a.seq - b.seq);
          if (after.length < 20) return false;
          let i = after.length;
          while (i > 0 && after[i - 1]!.id) i--;
          return after.length - i >= 20 ? after[i]!.answeredAt : false;
        },
        30_000,
        50,
      );
      // A little more load on the new master, then every answer is in.
      const target = load.answers.length + RATE;
      await until('another second of reviews on the new master', () => load.answers.length >= target, 20_000);
      await load.stop();
      stopped = true;

      const errors = load.answers.filter((a) => a.error);
      const answered = load.answers.filter((a): a is Answer & { id: string } => a.id !== undefined);
      const duringFault = load.answers.filter((a) => a.sentAt > killedAt && a.answeredAt < resumedAt);
      const lost: string[] = [];
      for (let i = 0; i < answered.length; i += 32) {
        const batch = answered.slice(i, i + 32);
        const statuses = await Promise.all(
          batch.map((a) => fetch(`${c.apiUrl}/mutations/${a.id}`, { headers: { authorization: `Bearer ${TOKEN}` } }).then((r) => r.status)),
        );
        statuses.forEach(
          (s, j) => s !== 200 && lost.push(`${batch[j]!.id} (seq ${batch[j]!.seq}, HTTP ${s}, answered ${batch[j]!.answeredAt - killedAt} ms after the kill)`),
        );
      }
      const summary = `${load.answers.length} reviews answered, ${answered.length} mutated, ${duringFault.length} answered during the failover (${duringFault.filter((a) => a.id).length} of them mutated), recovered ${resumedAt - killedAt} ms after kill -9, ${lost.length} answered ids missing from the log`;
      console.info(`sentinel failover: ${summary}`);

      expect(
        errors.map((a) => a.error),
        'every review is answered allowed (fail open)',
      ).toEqual([]);
      expect(resumedAt - killedAt, summary).toBeLessThanOrEqual(10_000);
      expect(lost, summary).toEqual([]);
    } finally {
      if (!stopped) await load.stop();
    }
  }, 120_000);
});
