// The extender's contract with kube-scheduler (k8s.io/kube-scheduler/extender/v1 types.go,
// pkg/scheduler/extender.go): bodies exactly as kube-scheduler marshals them (Go field names,
// compact JSON — test/fixtures/scheduler/args-*.json), replies byte for byte in the shapes it
// decodes, integer scores 0..10, and what it must survive: one feasible node, unknown nodes,
// stale agents, garbage. Over the real HTTPS listener with a client certificate.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { issueClientCert } from '#controller/certs/authority.js';

import { callExtender, type ExtenderRig, startExtenderRig } from '../harness/scheduler.ts';
import { until } from '../harness/wait.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/scheduler');
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8');

const GiB = 2 ** 30;
/** A node of 4 cores and 16 GiB whose agent reports `cpu` cores and `memGiB` GiB in use. */
const busy =
  (cpu: number, memGiB: number, memoryPsi = 0) =>
  () => ({
    node: {
      cpuCores: 4,
      cpuUsageCores: cpu,
      memoryTotalBytes: 16 * GiB,
      memoryUsedBytes: memGiB * GiB,
      memoryPressure: { someAvg10: memoryPsi },
      cpuPressure: { someAvg10: 0 },
    },
    pods: [],
  });

function expectIntegerScores(reply: unknown): Array<{ Host: string; Score: number }> {
  expect(Array.isArray(reply)).toBe(true);
  const list = reply as Array<Record<string, unknown>>;
  for (const h of list) {
    expect(Object.keys(h)).toEqual(['Host', 'Score']);
    expect(Number.isInteger(h.Score)).toBe(true);
    expect(h.Score as number).toBeGreaterThanOrEqual(0);
    expect(h.Score as number).toBeLessThanOrEqual(10);
  }
  return list as Array<{ Host: string; Score: number }>;
}

describe('scheduler extender contract', () => {
  let rig: ExtenderRig | undefined;
  afterEach(async () => {
    await rig?.stop();
    rig = undefined;
  });

  it('prioritize in the NodeNames form (nodeCacheCapable) answers [{"Host","Score"}] byte for byte; nodes no agent reports for score a neutral 5', async () => {
    rig = await startExtenderRig();
    const r = await rig.call('prioritize', fixture('args-nodenames.json'));
    expect(r.status).toBe(200);
    expect(r.text).toBe(fixture('prioritize-neutral.reply.json'));
    expectIntegerScores(r.json());
  });

  it('prioritize in the Nodes form (whole NodeList) answers the same shape, in the order of the candidates', async () => {
    rig = await startExtenderRig();
    const r = await rig.call('prioritize', fixture('args-nodes.json'));
    expect(r.status).toBe(200);
    expect(r.text).toBe(fixture('prioritize-neutral.reply.json'));
  });

  it('prioritize scores from agent reports as integers: the idle node above the busy one', async () => {
    rig = await startExtenderRig();
    await rig.agent('node-a', busy(3.6, 14));
    await rig.agent('node-b', busy(0.2, 1));
    const scores = expectIntegerScores((await rig.call('prioritize', fixture('args-nodenames.json'))).json());
    expect(scores.map((s) => s.Host)).toEqual(['node-a', 'node-b']);
    expect(scores[1]!.Score).toBeGreaterThan(scores[0]!.Score);
  });

  it('a pod with one feasible node gets one score for it', async () => {
    rig = await startExtenderRig();
    await rig.agent('node-a', busy(1, 4));
    const r = await rig.call('prioritize', fixture('args-one-node.json'));
    expect(r.status).toBe(200);
    const scores = expectIntegerScores(r.json());
    expect(scores).toHaveLength(1);
    expect(scores[0]!.Host).toBe('node-a');
  });

  it('a stale agent (last report older than nodeStaleAfter) scores neutral, not an error', async () => {
    rig = await startExtenderRig({ nodeStaleAfter: 1000 });
    await rig.agent('node-a', busy(3.9, 15.5));
    const fresh = expectIntegerScores((await rig.call('prioritize', fixture('args-one-node.json'))).json());
    expect(fresh[0]!.Score).toBeLessThan(5);
    const { c } = rig;
    await until('node-a turns stale', () => c.registry.list().find((n) => n.name === 'node-a')?.stale, 5000);
    const r = await rig.call('prioritize', fixture('args-one-node.json'));
    expect(r.status).toBe(200);
    expect(r.text).toBe('[{"Host":"node-a","Score":5}]');
  });

  it('filter (off by default) passes every node, answering in the form it was asked: NodeNames, or the Node objects unchanged', async () => {
    rig = await startExtenderRig();
    await rig.agent('node-a', busy(3.9, 15.9, 90));
    const names = await rig.call('filter', fixture('args-nodenames.json'));
    expect(names.status).toBe(200);
    expect(names.text).toBe(fixture('filter-nodenames.reply.json'));
    const nodes = await rig.call('filter', fixture('args-nodes.json'));
    expect(nodes.status).toBe(200);
    expect(nodes.text).toBe(fixture('filter-nodes.reply.json'));
  });

  it('filter, when enabled, refuses only the node under memory pressure and the silent one; unknown nodes pass', async () => {
    rig = await startExtenderRig({ schedulerFilter: true, schedulerFilterMemoryPressure: 40, schedulerFilterSilentAfter: 1000 });
    const pressed = await rig.agent('node-a', busy(1, 8, 75));
    const silent = await rig.agent('node-b', busy(1, 8, 0));
    await silent.stop();
    const fine = await rig.agent('node-c', busy(1, 8, 5));
    const { c } = rig;
    await until('node-b silent for over a second', () => Date.now() - (c.registry.get('node-b')?.lastReportAt ?? Date.now()) > 1100, 5000);
    await pressed.reportNow();
    await fine.reportNow();
    const body = JSON.parse(fixture('args-nodenames.json')) as Record<string, unknown>;
    body.NodeNames = ['node-a', 'node-b', 'node-c', 'node-unknown'];
    const r = await rig.call('filter', body);
    expect(r.status).toBe(200);
    const reply = r.json() as Record<string, unknown>;
    expect(Object.keys(reply)).toEqual(['Nodes', 'NodeNames', 'FailedNodes', 'FailedAndUnresolvableNodes', 'Error']);
    expect(reply.NodeNames).toEqual(['node-c', 'node-unknown']);
    expect(reply.Nodes).toBeNull();
    expect(Object.keys(reply.FailedNodes as object).sort()).toEqual(['node-a', 'node-b']);
    expect((reply.FailedNodes as Record<string, string>)['node-a']).toMatch(/memory pressure/);
    expect((reply.FailedNodes as Record<string, string>)['node-b']).toMatch(/silent/);
    expect(reply.Error).toBe('');
  });

  it('garbage bodies get 400 with NEMU_ERR_BAD_REQUEST (or NEMU_ERR_NESTING_TOO_DEEP), and the extender keeps answering', async () => {
    rig = await startExtenderRig();
    const garbage: Array<[string, string]> = [
      ['not JSON', '{"Pod": {'],
      ['empty', ''],
      ['an array', '[]'],
      ['no Pod', '{"NodeNames":["node-a"]}'],
      ['no candidates', '{"Pod":{},"Nodes":null,"NodeNames":null}'],
      ['NodeNames not strings', '{"Pod":{},"NodeNames":[1,2]}'],
      ['a Node without a name', '{"Pod":{},"Nodes":{"metadata":{},"items":[{"metadata":{}}]}}'],
      ['Pod a string', '{"Pod":"web","NodeNames":["node-a"]}'],
    ];
    for (const [what, body] of garbage) {
      for (const verb of ['prioritize', 'filter']) {
        const r = await rig.call(verb, body);
        expect(r.status, `${verb} with ${what}`).toBe(400);
        expect((r.json() as { code: string }).code, `${verb} with ${what}`).toBe('NEMU_ERR_BAD_REQUEST');
      }
    }
    const deep = await rig.call('prioritize', `{"Pod":${'['.repeat(500)}${']'.repeat(500)},"NodeNames":[]}`);
    expect(deep.status).toBe(400);
    expect((deep.json() as { code: string }).code).toBe('NEMU_ERR_NESTING_TOO_DEEP');
    const after = await rig.call('prioritize', fixture('args-nodenames.json'));
    expect(after.text).toBe(fixture('prioritize-neutral.reply.json'));
  });

  it('only the two verbs, only POST: 404 and 405 with codes', async () => {
    rig = await startExtenderRig();
    const unknown = await rig.call('bind', fixture('args-nodenames.json'));
    expect(unknown.status).toBe(404);
    expect((unknown.json() as { code: string }).code).toBe('NEMU_ERR_NOT_FOUND');
    const get = await rig.call('prioritize', '', 'GET');
    expect(get.status).toBe(405);
    expect((get.json() as { code: string }).code).toBe('NEMU_ERR_BAD_REQUEST');
  });

  it('nothing is answered without a client certificate from the client CA with an allowed name', async () => {
    rig = await startExtenderRig();
    const { url, c } = rig;
    await expect(callExtender(url, 'prioritize', fixture('args-nodenames.json'), undefined, c.tls.caPem)).rejects.toThrow();
    const caKey = readFileSync(join(c.config.stateDir, 'tls', 'ca.key'), 'utf8');
    const stranger = await issueClientCert({ certPem: c.tls.caPem, keyPem: caKey }, 'someone-else', 1);
    const r = await callExtender(url, 'prioritize', fixture('args-nodenames.json'), stranger, c.tls.caPem);
    expect(r.status).toBe(403);
    expect((r.json() as { code: string }).code).toBe('NEMU_ERR_FORBIDDEN');
  });
});
