// Local mode serves the scheduler extender too: this machine's agent is its one node, the
// banner names the extender's prefix, and a client certificate for kube-scheduler waits in
// the state directory.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { banner } from '#local/main.js';

import { startTestLocal, type TestLocal } from '../harness/controller.ts';
import { callExtender } from '../harness/scheduler.ts';

describe('local mode: scheduler extender', () => {
  let t: TestLocal | undefined;
  afterEach(async () => {
    await t?.stop();
    t = undefined;
  });

  it('prints the extender prefix on a line naming it and scores this machine from its own agent', async () => {
    t = await startTestLocal();
    const { local } = t;
    expect(local.scheduler).toBeDefined();
    const line = banner(local)
      .split('\n')
      .find((l) => l.includes('scheduler extender'));
    expect(line).toMatch(/^ {2}scheduler extender https:\/\/127\.0\.0\.1:\d+\/scheduler\/v1\/\{filter,prioritize\}/);
    expect(line).toContain(local.scheduler!.url);
    expect(line).toContain(local.scheduler!.certFile);

    const creds = { certPem: readFileSync(local.scheduler!.certFile, 'utf8'), keyPem: readFileSync(local.scheduler!.keyFile, 'utf8') };
    const ca = readFileSync(local.caFile, 'utf8');
    const me = local.config.nodeName;
    const body = {
      Pod: {
        metadata: { name: 'web-7d4b9c6f5-x2k9q', namespace: 'default' },
        spec: { containers: [{ name: 'web', resources: { requests: { cpu: '100m', memory: '64Mi' } } }] },
      },
      Nodes: null,
      NodeNames: [me, 'not-this-machine'],
    };
    const r = await callExtender(local.scheduler!.url, 'prioritize', body, creds, ca);
    expect(r.status).toBe(200);
    const scores = r.json() as Array<{ Host: string; Score: number }>;
    expect(scores.map((s) => s.Host)).toEqual([me, 'not-this-machine']);
    for (const s of scores) expect(Number.isInteger(s.Score)).toBe(true);
    // The machine's agent reports real usage: its score is computed; the unknown node is neutral.
    expect(scores[1]!.Score).toBe(5);
    const filter = await callExtender(local.scheduler!.url, 'filter', body, creds, ca);
    expect(filter.text).toBe(
      `{"Nodes":null,"NodeNames":${JSON.stringify([me, 'not-this-machine'])},"FailedNodes":{},"FailedAndUnresolvableNodes":{},"Error":""}`,
    );
  });

  it('with --scheduler-extender false nothing listens for it and the banner says it is off', async () => {
    t = await startTestLocal({ schedulerExtender: false });
    expect(t.local.scheduler).toBeUndefined();
    expect(banner(t.local)).toContain('scheduler extender off');
  });
});
