// API semantics of the Kubernetes double over plain HTTP, where exact wire shapes matter:
// metav1.Status errors, resourceVersion conflicts, generateName, dry run, pagination,
// selectors, watch (resume, 410 Expired, selector transitions, bookmarks, timeouts),
// status/scale/resize subresources, finalizers, garbage collection and namespace deletion.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type KubeDouble, startKubeDouble } from '../harness/kube/index.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let kube: KubeDouble;
let quiet: KubeDouble; // no controllers: nothing moves unless the test moves it
const NS = 'sem';

function client(double: () => KubeDouble) {
  return async (method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; body: Obj; headers: Headers }> => {
    const d = double();
    const res = await fetch(`${d.httpUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${d.adminToken}`, 'content-type': contentType, accept: 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Obj) : {}, headers: res.headers };
  };
}
const api = client(() => kube);
const q = client(() => quiet);

interface WatchStream {
  status: number;
  events: Obj[];
  ended: Promise<void>;
  close(): void;
}

async function watch(double: KubeDouble, path: string): Promise<WatchStream> {
  const ac = new AbortController();
  const res = await fetch(`${double.httpUrl}${path}`, { headers: { authorization: `Bearer ${double.adminToken}` }, signal: ac.signal });
  const events: Obj[] = [];
  const ended = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          events.push(JSON.parse(buf.slice(0, i)) as Obj);
          buf = buf.slice(i + 1);
        }
      }
    } catch {
      // aborted by the test
    }
  })();
  return { status: res.status, events, ended, close: () => ac.abort() };
}

const cm = (name: string, labels: Record<string, string> = {}, extra: Obj = {}): Obj => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, labels, ...extra },
  data: { v: '1' },
});
const nsPath = (ns = NS) => `/api/v1/namespaces/${ns}`;

beforeAll(async () => {
  [kube, quiet] = await Promise.all([
    startKubeDouble({ http: true, bookmarkIntervalMs: 100 }),
    startKubeDouble({ http: true, controllers: false, historySize: 5 }),
  ]);
  for (const c of [api, q]) expect((await c('POST', '/api/v1/namespaces', { metadata: { name: NS } })).status).toBe(201);
});
afterAll(async () => {
  await Promise.all([kube?.stop(), quiet?.stop()]);
});

describe('errors and concurrency', () => {
  it('create fills system fields; errors are metav1.Status objects as the real server writes them', async () => {
    const created = await api('POST', `${nsPath()}/configmaps`, cm('a'));
    expect(created.status).toBe(201);
    expect(created.body.metadata).toMatchObject({
      name: 'a',
      namespace: NS,
      uid: expect.stringMatching(/^[0-9a-f-]{36}$/),
      resourceVersion: expect.stringMatching(/^\d+$/),
      creationTimestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    });

    expect((await api('POST', `${nsPath()}/configmaps`, cm('a'))).body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'configmaps "a" already exists',
      reason: 'AlreadyExists',
      details: { name: 'a', kind: 'configmaps' },
      code: 409,
    });
    expect((await api('GET', `/apis/apps/v1/namespaces/${NS}/deployments/nope`)).body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'deployments.apps "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', group: 'apps', kind: 'deployments' },
      code: 404,
    });
    const invalid = await api('POST', `${nsPath()}/configmaps`, { metadata: { name: 'Bad_Name' } });
    expect(invalid.status).toBe(422);
    expect(invalid.body).toMatchObject({
      reason: 'Invalid',
      details: { name: 'Bad_Name', kind: 'ConfigMap', causes: [{ reason: 'FieldValueInvalid', field: 'metadata.name' }] },
    });
    expect(invalid.body.message).toMatch(/^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/);
    expect((await api('POST', '/api/v1/namespaces/missing/configmaps', cm('x'))).body).toMatchObject({ code: 404, message: 'namespaces "missing" not found' });
    expect((await api('POST', `${nsPath()}/configmaps`, { ...cm('x'), metadata: { name: 'x', namespace: 'other' } })).body).toMatchObject({
      code: 400,
      reason: 'BadRequest',
      message: 'the namespace of the provided object does not match the namespace sent on the request',
    });
    expect((await api('GET', '/api/v1/widgets')).status).toBe(404);
    // Anonymous is authenticated as system:anonymous and refused; a bad token is 401.
    const anonymous = await fetch(`${kube.httpUrl}/api/v1/namespaces`);
    expect(await anonymous.json()).toMatchObject({
      code: 403,
      message: 'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the cluster scope',
    });
    expect((await fetch(`${kube.httpUrl}/version`)).status).toBe(200);
    expect((await fetch(`${kube.httpUrl}/api`)).status).toBe(403);
    expect((await fetch(`${kube.httpUrl}/api`, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('a stale resourceVersion is a 409 Conflict; an update without one is unconditional; a no-op changes nothing', async () => {
    // Created by the test above; created here when this one runs alone.
    if ((await api('GET', `${nsPath()}/configmaps/a`)).status === 404) expect((await api('POST', `${nsPath()}/configmaps`, cm('a'))).status).toBe(201);
    const { body: a } = await api('GET', `${nsPath()}/configmaps/a`);
    const first = await api('PUT', `${nsPath()}/configmaps/a`, { ...a, data: { v: '2' } });
    expect(first.status).toBe(200);
    expect(Number(first.body.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    const stale = await api('PUT', `${nsPath()}/configmaps/a`, { ...a, data: { v: '3' } });
    expect(stale.body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'Operation cannot be fulfilled on configmaps "a": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'a', kind: 'configmaps' },
      code: 409,
    });
    const staleMerge = await api(
      'PATCH',
      `${nsPath()}/configmaps/a`,
      { metadata: { resourceVersion: a.metadata.resourceVersion }, data: { v: '4' } },
      'application/merge-patch+json',
    );
    expect(staleMerge.status).toBe(409);
    const { metadata: _m, ...withoutRv } = first.body;
    const unconditional = await api('PUT', `${nsPath()}/configmaps/a`, { ...withoutRv, metadata: { name: 'a' }, data: { v: '5' } });
    expect(unconditional.body.data).toEqual({ v: '5' });
    expect(unconditional.body.metadata.uid).toBe(a.metadata.uid);
    const noop = await api('PUT', `${nsPath()}/configmaps/a`, unconditional.body);
    expect(noop.body.metadata.resourceVersion).toBe(unconditional.body.metadata.resourceVersion);
  });

  it('generateName, dryRun=All and unsupported patch types', async () => {
    const gen = await api('POST', `${nsPath()}/configmaps`, { metadata: { generateName: 'job-' }, data: {} });
    expect(gen.body.metadata.name).toMatch(/^job-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    const dry = await api('POST', `${nsPath()}/configmaps?dryRun=All`, cm('dry'));
    expect(dry.status).toBe(201);
    expect(dry.body.metadata.uid).toBeDefined();
    expect((await api('GET', `${nsPath()}/configmaps/dry`)).status).toBe(404);
    const ssa = await api('PATCH', `${nsPath()}/configmaps/a`, 'data: {v: "9"}', 'application/apply-patch+yaml');
    expect(ssa.body).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    expect((await api('PATCH', `${nsPath()}/configmaps/a`, '{}', 'text/plain')).status).toBe(415);
  });
});

describe('lists and selectors', () => {
  it('pages with limit/continue and filters with set-based label selectors and field selectors', async () => {
    for (const [name, tier] of [
      ['p1', 'web'],
      ['p2', 'db'],
      ['p3', 'web'],
      ['p4', 'cache'],
    ] as const) {
      await q('POST', `${nsPath()}/configmaps`, cm(name, { tier, ...(name === 'p4' ? { legacy: 'true' } : {}) }));
    }
    const page1 = await q('GET', `${nsPath()}/configmaps?limit=2&labelSelector=tier`);
    expect(page1.body).toMatchObject({ kind: 'ConfigMapList', apiVersion: 'v1', metadata: { remainingItemCount: 2 } });
    expect(page1.body.items.map((i: Obj) => i.metadata.name)).toEqual(['p1', 'p2']);
    expect(page1.body.items[0].kind).toBeUndefined(); // list items carry no type meta on the wire
    const page2 = await q('GET', `${nsPath()}/configmaps?limit=2&labelSelector=tier&continue=${encodeURIComponent(page1.body.metadata.continue)}`);
    expect(page2.body.items.map((i: Obj) => i.metadata.name)).toEqual(['p3', 'p4']);
    expect(page2.body.metadata.continue).toBeUndefined();
    const names = async (query: string) => (await q('GET', `${nsPath()}/configmaps?${query}`)).body.items.map((i: Obj) => i.metadata.name);
    expect(await names(`labelSelector=${encodeURIComponent('tier in (web,cache),!legacy')}`)).toEqual(['p1', 'p3']);
    expect(await names(`labelSelector=${encodeURIComponent('tier notin (web)')}`)).toEqual(['kube-root-ca.crt', 'p2', 'p4']);
    expect(await names(`fieldSelector=${encodeURIComponent('metadata.name!=p1')}&labelSelector=tier%3Dweb`)).toEqual(['p3']);
    const across = await q('GET', `/api/v1/configmaps?fieldSelector=${encodeURIComponent(`metadata.namespace=${NS},metadata.name=p2`)}`);
    expect(across.body.items.map((i: Obj) => `${i.metadata.namespace}/${i.metadata.name}`)).toEqual([`${NS}/p2`]);
    expect((await q('GET', `${nsPath()}/configmaps?labelSelector=${encodeURIComponent('tier in (web')}`)).status).toBe(400);
  });
});

describe('watch', () => {
  it('resumes after a resourceVersion with the events since, in order', async () => {
    const { body: list } = await api('GET', `${nsPath()}/configmaps`);
    const rv = list.metadata.resourceVersion;
    await api('POST', `${nsPath()}/configmaps`, cm('w1'));
    await api('PATCH', `${nsPath()}/configmaps/w1`, { data: { v: '2' } }, 'application/merge-patch+json');
    await api('DELETE', `${nsPath()}/configmaps/w1`);
    const w = await watch(kube, `${nsPath()}/configmaps?watch=true&resourceVersion=${rv}`);
    try {
      await expect.poll(() => w.events.length).toBe(3);
      expect(w.events.map((e) => `${e.type} ${e.object.metadata.name} ${e.object.data?.v}`)).toEqual(['ADDED w1 1', 'MODIFIED w1 2', 'DELETED w1 2']);
      const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
      expect([...rvs].sort((a, b) => a - b)).toEqual(rvs);
      expect(w.events[0]?.object).toMatchObject({ kind: 'ConfigMap', apiVersion: 'v1' });
    } finally {
      w.close();
    }
  });

  it('a resourceVersion older than the history is answered with ERROR 410 Expired, then the stream ends', async () => {
    const { body: list } = await q('GET', `${nsPath()}/configmaps`);
    for (let i = 0; i < 6; i++) await q('POST', `${nsPath()}/configmaps`, cm(`ring-${i}`)); // history holds 5 events
    const w = await watch(quiet, `${nsPath()}/configmaps?watch=true&resourceVersion=${list.metadata.resourceVersion}`);
    await w.ended;
    expect(w.status).toBe(200);
    expect(w.events).toHaveLength(1);
    expect(w.events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 } });
    expect(w.events[0]!.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
    // compact() forgets everything: even the latest-but-one version is gone.
    const { body: now } = await q('GET', `${nsPath()}/configmaps`);
    await q('POST', `${nsPath()}/configmaps`, cm('after'));
    quiet.compact();
    const w2 = await watch(quiet, `${nsPath()}/configmaps?watch=true&resourceVersion=${now.metadata.resourceVersion}`);
    await w2.ended;
    expect(w2.events[0]).toMatchObject({ type: 'ERROR', object: { code: 410 } });
    const future = await q('GET', `${nsPath()}/configmaps?watch=true&resourceVersion=999999999`);
    expect(future.body).toMatchObject({ code: 504, reason: 'Timeout', details: { causes: [{ reason: 'ResourceVersionTooLarge' }] } });
  });

  it('an object leaving a watch selector is DELETED for that watcher, and ADDED when it comes back', async () => {
    await api('POST', `${nsPath()}/configmaps`, cm('mover', { team: 'a' }));
    const w = await watch(kube, `${nsPath()}/configmaps?watch=true&labelSelector=team%3Da`);
    try {
      await expect.poll(() => w.events.map((e) => e.type)).toEqual(['ADDED']);
      await api('PATCH', `${nsPath()}/configmaps/mover`, { metadata: { labels: { team: 'b' } } }, 'application/merge-patch+json');
      await api('PATCH', `${nsPath()}/configmaps/mover`, { metadata: { labels: { team: 'a' } } }, 'application/merge-patch+json');
      await expect.poll(() => w.events.map((e) => e.type)).toEqual(['ADDED', 'DELETED', 'ADDED']);
      expect(w.events[1]?.object.metadata.labels).toEqual({ team: 'a' }); // the last state it had inside the selector
    } finally {
      w.close();
    }
  });

  it('sends bookmarks when allowed, marks the end of initial events, and honours timeoutSeconds', async () => {
    const w = await watch(
      kube,
      `${nsPath()}/configmaps?watch=true&allowWatchBookmarks=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=&timeoutSeconds=1`,
    );
    const started = Date.now();
    await w.ended;
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const firstBookmark = w.events.findIndex((e) => e.type === 'BOOKMARK');
    expect(firstBookmark).toBeGreaterThan(0);
    expect(w.events.slice(0, firstBookmark).every((e) => e.type === 'ADDED')).toBe(true);
    expect(w.events[firstBookmark]!.object).toMatchObject({
      kind: 'ConfigMap',
      apiVersion: 'v1',
      metadata: { annotations: { 'k8s.io/initial-events-end': 'true' }, resourceVersion: expect.stringMatching(/^\d+$/) },
    });
    expect(w.events.filter((e) => e.type === 'BOOKMARK').length).toBeGreaterThan(2); // periodic ones (every 100 ms here)
    const bad = await api('GET', `${nsPath()}/configmaps?watch=true&sendInitialEvents=true`);
    expect(bad.body).toMatchObject({ code: 422, reason: 'Invalid' });
  });

  it('dropWatches ends open streams', async () => {
    const w = await watch(kube, `${nsPath()}/configmaps?watch=true&resourceVersion=0`);
    await expect.poll(() => w.events.length).toBeGreaterThan(0);
    expect(kube.dropWatches('end')).toBeGreaterThanOrEqual(1);
    await w.ended;
  });
});

describe('subresources', () => {
  const deployment = (name: string): Obj => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'busybox:1.36' }] } },
    },
  });

  it('status is written only through /status, and spec only through the main resource', async () => {
    const created = (await q('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, deployment('st'))).body;
    expect(created.metadata.generation).toBe(1);
    const viaMain = await q('PUT', `/apis/apps/v1/namespaces/${NS}/deployments/st`, {
      ...created,
      spec: { ...created.spec, replicas: 2 },
      status: { replicas: 7 },
    });
    expect(viaMain.body.spec.replicas).toBe(2);
    expect(viaMain.body.status).toEqual({});
    expect(viaMain.body.metadata.generation).toBe(2);
    const viaStatus = await q('PUT', `/apis/apps/v1/namespaces/${NS}/deployments/st/status`, {
      ...viaMain.body,
      spec: { ...viaMain.body.spec, replicas: 9 },
      status: { replicas: 2, observedGeneration: 2 },
    });
    expect(viaStatus.body.spec.replicas).toBe(2);
    expect(viaStatus.body.status).toEqual({ replicas: 2, observedGeneration: 2 });
    expect(viaStatus.body.metadata.generation).toBe(2);
    const patched = await q('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/st/status`, { status: { readyReplicas: 1 } }, 'application/merge-patch+json');
    expect(patched.body.status).toEqual({ replicas: 2, observedGeneration: 2, readyReplicas: 1 });
  });

  it('scale reads and writes replicas as an autoscaling/v1 Scale', async () => {
    // The Deployment the test above leaves (2 replicas, status written); made here when this one runs alone.
    if ((await q('GET', `/apis/apps/v1/namespaces/${NS}/deployments/st`)).status === 404) {
      const created = (await q('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, { ...deployment('st'), spec: { ...deployment('st').spec, replicas: 2 } }))
        .body;
      await q('PUT', `/apis/apps/v1/namespaces/${NS}/deployments/st/status`, { ...created, status: { replicas: 2, observedGeneration: 1 } });
    }
    const scale = await q('GET', `/apis/apps/v1/namespaces/${NS}/deployments/st/scale`);
    expect(scale.body).toMatchObject({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: { name: 'st', namespace: NS },
      spec: { replicas: 2 },
      status: { replicas: 2, selector: 'app=st' },
    });
    const patched = await q('PATCH', `/apis/apps/v1/namespaces/${NS}/deployments/st/scale`, { spec: { replicas: 4 } }, 'application/merge-patch+json');
    expect(patched.body.spec.replicas).toBe(4);
    expect((await q('GET', `/apis/apps/v1/namespaces/${NS}/deployments/st`)).body.spec.replicas).toBe(4);
    const negative = await q('PUT', `/apis/apps/v1/namespaces/${NS}/deployments/st/scale`, { ...patched.body, spec: { replicas: -1 } });
    expect(negative.body).toMatchObject({
      code: 422,
      message: expect.stringContaining('spec.replicas: Invalid value: -1: must be greater than or equal to 0'),
    });
  });

  it('pod resources change only through /resize', async () => {
    await q('POST', `${nsPath()}/pods`, {
      metadata: { name: 'rz' },
      spec: { containers: [{ name: 'c', image: 'busybox:1.36', resources: { requests: { cpu: '100m' } } }] },
    });
    const viaMain = await q(
      'PATCH',
      `${nsPath()}/pods/rz`,
      { spec: { containers: [{ name: 'c', resources: { requests: { cpu: '200m' } } }] } },
      'application/strategic-merge-patch+json',
    );
    expect(viaMain.body).toMatchObject({ code: 422, message: expect.stringContaining('pod updates may not change fields') });
    const resized = await q(
      'PATCH',
      `${nsPath()}/pods/rz/resize`,
      { spec: { containers: [{ name: 'c', resources: { requests: { cpu: '200m' } } }] } },
      'application/strategic-merge-patch+json',
    );
    expect(resized.status).toBe(200);
    expect(resized.body.spec.containers[0].resources).toEqual({ requests: { cpu: '200m' } });
    expect(resized.body.spec.containers[0].image).toBe('busybox:1.36');
  });
});

describe('deletion', () => {
  it('finalizers hold an object in deletion until they are removed', async () => {
    await q('POST', `${nsPath()}/configmaps`, cm('held', {}, { finalizers: ['example.com/cleanup'] }));
    const del = await q('DELETE', `${nsPath()}/configmaps/held`);
    expect(del.status).toBe(202);
    expect(del.body.metadata.deletionTimestamp).toBeDefined();
    expect((await q('GET', `${nsPath()}/configmaps/held`)).status).toBe(200);
    await q('PATCH', `${nsPath()}/configmaps/held`, [{ op: 'remove', path: '/metadata/finalizers' }], 'application/json-patch+json');
    expect((await q('GET', `${nsPath()}/configmaps/held`)).status).toBe(404);
  });

  it('owner references: background deletion removes dependents, Orphan keeps them without the reference', async () => {
    const owner = (await q('POST', `${nsPath()}/configmaps`, cm('owner'))).body;
    const ref = { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid, controller: true };
    await q('POST', `${nsPath()}/configmaps`, cm('dep-1', {}, { ownerReferences: [ref] }));
    await q('POST', `${nsPath()}/configmaps`, cm('dep-2', {}, { ownerReferences: [ref] }));
    await q('DELETE', `${nsPath()}/configmaps/owner`);
    await quiet.settle();
    expect((await q('GET', `${nsPath()}/configmaps/dep-1`)).status).toBe(404);
    expect((await q('GET', `${nsPath()}/configmaps/dep-2`)).status).toBe(404);

    const owner2 = (await q('POST', `${nsPath()}/configmaps`, cm('owner2'))).body;
    await q('POST', `${nsPath()}/configmaps`, cm('orphan', {}, { ownerReferences: [{ ...ref, name: 'owner2', uid: owner2.metadata.uid }] }));
    await q('DELETE', `${nsPath()}/configmaps/owner2`, { propagationPolicy: 'Orphan' });
    await quiet.settle();
    const orphan = await q('GET', `${nsPath()}/configmaps/orphan`);
    expect(orphan.status).toBe(200);
    expect(orphan.body.metadata.ownerReferences).toBeUndefined();
  });

  it('deleting a namespace marks it Terminating, removes its contents, then removes it', async () => {
    await q('POST', '/api/v1/namespaces', { metadata: { name: 'doomed' } });
    await quiet.settle();
    await q('POST', '/api/v1/namespaces/doomed/configmaps', cm('c'));
    const del = await q('DELETE', '/api/v1/namespaces/doomed');
    expect(del.status).toBe(202);
    expect(del.body.status.phase).toBe('Terminating');
    await quiet.settle();
    expect((await q('GET', '/api/v1/namespaces/doomed')).status).toBe(404);
    expect((await q('GET', '/api/v1/namespaces/doomed/configmaps/c')).status).toBe(404);
    expect((await q('DELETE', '/api/v1/namespaces/default')).body).toMatchObject({
      code: 403,
      message: 'namespaces "default" is forbidden: this namespace may not be deleted',
    });
  });
});
