import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import fjp, { type Operation } from 'fast-json-patch';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';

import { type Dictionary, MemoryDictionary } from '../dictionary/dictionary.ts';
import { createControllerMetrics } from '../metrics.ts';
import { MutationLog } from '../mutations/log.ts';
import { DEFAULT_CHAIN } from '../mutators/chain.ts';
import { RatioSource } from '../mutators/resources.ts';
import { type KubeObject, MUTATION_LABEL, type Mutator, type RecommendationSource } from '../mutators/types.ts';
import { LevelStore } from '../store/level.ts';
import { createAdmissionHandler } from './handler.ts';
import type { AdmissionReviewOut } from './review.ts';
import { SkipRules } from './skip-rules.ts';

const DICT = {
  nemu_label_team: 'example.com/team',
  nemu_label_value_pay: 'payments',
  nemu_anno_contact: 'example.com/contact',
  nemu_anno_value_mail: 'ops@example.com',
  nemu_env_db: 'postgres://db',
  nemu_image_ubuntu: '20.04',
  nemu_tolerations: JSON.stringify([{ match: { labels: { 'example.com/team': 'payments' } }, tolerations: [{ key: 'pay', operator: 'Exists' }] }]),
};

function review(object: KubeObject, over: Record<string, unknown> = {}): Buffer {
  const kind = object.kind === 'Deployment' ? { group: 'apps', version: 'v1', kind: 'Deployment' } : { group: '', version: 'v1', kind: 'Pod' };
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: { uid: 'u-1', kind, operation: 'CREATE', namespace: 'web', userInfo: { username: 'alice' }, object, ...over },
    }),
  );
}

function patchOf(out: AdmissionReviewOut): Operation[] {
  return out.response.patch ? (JSON.parse(Buffer.from(out.response.patch, 'base64').toString()) as Operation[]) : [];
}

function apply(object: KubeObject, ops: Operation[]): KubeObject {
  return fjp.applyPatch(structuredClone(object), structuredClone(ops), true, false).newDocument;
}

function pod(
  metadata: Record<string, unknown>,
  containers: unknown[] = [{ name: 'app', image: 'ubuntu:14.04', env: [{ name: 'DB', value: 'nemu_env_db' }] }],
): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'web-', namespace: 'web', ...metadata }, spec: { containers } };
}

let dir: string;
let store: LevelStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-admission-'));
  store = await LevelStore.open(dir);
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function handler(dictionary: Dictionary = new MemoryDictionary(DICT), over: Partial<Parameters<typeof createAdmissionHandler>[0]> = {}) {
  const mutationLog = new MutationLog(store, silentLogger);
  return {
    mutationLog,
    h: createAdmissionHandler({
      log: silentLogger,
      dictionary,
      mutationLog,
      skipRules: new SkipRules(store),
      ratio: new RatioSource({ cpu: 2, memory: 2 }),
      ...over,
    }),
  };
}

/** The patch with the review's own mutation id blanked out, to compare two reviews' answers. */
function withoutId(ops: Operation[]): Operation[] {
  return JSON.parse(JSON.stringify(ops).replace(/"[0-9A-HJKMNP-TV-Z]{26}"/g, '"ID"')) as Operation[];
}

describe('decoding', () => {
  it.each([
    ['not json', 'not JSON'],
    ['[]', 'expected a JSON object'],
    ['{"kind":"Pod"}', 'not an AdmissionReview'],
    ['{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview"}', 'apiVersion'],
    ['{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}', 'no uid'],
  ])('refuses %s with 400 and says which', async (body, message) => {
    await expect(handler().h.review(Buffer.from(body))).rejects.toMatchObject({ status: 400, message: expect.stringContaining(message) });
  });

  it('admits an object the chain cannot handle unchanged, with a warning', async () => {
    const out = await handler().h.review(review({ kind: 'Pod', metadata: 'nope' } as unknown as KubeObject));
    expect(out.response).toMatchObject({ uid: 'u-1', allowed: true });
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.[0]).toContain('no usable object');
  });
});

describe('a review', () => {
  it('answers a verified patch that escapes / and ~ in keys, and logs the mutation', async () => {
    const { h, mutationLog } = handler(new MemoryDictionary({ ...DICT, 'nemu_label_a~b': 'example.com/tilde' }));
    const original = pod({
      labels: { nemu_label_team: 'nemu_label_value_pay', 'nemu_label_a~b': 'x' },
      annotations: { nemu_anno_contact: 'nemu_anno_value_mail' },
    });
    const out = await h.review(review(original));
    expect(out.response.patchType).toBe('JSONPatch');
    const ops = patchOf(out);
    expect(ops.map((o) => o.path)).toContain('/metadata/labels/nemu_label_a~0b');
    expect(ops.map((o) => o.path)).toContain('/metadata/labels/example.com~1team');
    const mutated = apply(original, ops) as {
      metadata: { labels: Record<string, string>; annotations: unknown };
      spec: { containers: Array<{ image: string; env: unknown }>; tolerations: unknown };
    };
    expect(mutated.metadata.labels).toMatchObject({ 'example.com/team': 'payments', 'example.com/tilde': 'x' });
    expect(mutated.metadata.annotations).toEqual({ 'example.com/contact': 'ops@example.com' });
    expect(mutated.spec.containers[0]!.image).toBe('ubuntu:20.04');
    expect(mutated.spec.containers[0]!.env).toEqual([{ name: 'DB', value: 'postgres://db' }]);
    expect(mutated.spec.tolerations).toEqual([{ key: 'pay', operator: 'Exists' }]);
    const id = mutated.metadata.labels[MUTATION_LABEL]!;
    const entry = await mutationLog.get(id);
    expect(entry).toMatchObject({ reviewUid: 'u-1', kind: 'Pod', namespace: 'web', generateName: 'web-', user: 'alice', operation: 'CREATE' });
    expect(entry!.verbs).toEqual(['labels', 'annotations', 'tolerations', 'env', 'image']);
    expect(apply(mutated as KubeObject, entry!.reversePatch)).toEqual(original);
  });

  it('does nothing at all with nemutator.io/skip: "true"', async () => {
    const out = await handler().h.review(review(pod({ labels: { nemu_label_team: 'x' }, annotations: { 'nemutator.io/skip': 'true' } })));
    expect(out.response).toEqual({ uid: 'u-1', allowed: true });
  });

  it('skips the listed verbs and warns about unknown ones', async () => {
    const out = await handler().h.review(review(pod({ annotations: { 'nemutator.io/skip-mutation': 'env image frobnicate' } })));
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.join()).toContain('unknown verb "frobnicate"');
  });

  it('with skip-mutation: patch computes everything and returns nothing (dry run)', async () => {
    const { h, mutationLog } = handler();
    const before = (await mutationLog.list()).length;
    const out = await h.review(review(pod({ annotations: { 'nemutator.io/skip-mutation': 'patch' } })));
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.join()).toMatch(/dry run .*replace \/spec\/containers\/0\/image/);
    expect((await mutationLog.list()).length).toBe(before);
  });

  it('with request.dryRun returns the patch but writes no mutation log entry', async () => {
    const { h, mutationLog } = handler();
    const before = (await mutationLog.list()).length;
    const out = await h.review(review(pod({}), { dryRun: true }));
    expect(patchOf(out).length).toBeGreaterThan(0);
    expect(patchOf(out).some((o) => o.path.includes('nemutator.io'))).toBe(false);
    expect((await mutationLog.list()).length).toBe(before);
  });

  it('admits unchanged with NEMU_ERR_DICT_UNREACHABLE when the dictionary fails', async () => {
    const broken = new MemoryDictionary();
    broken.lookup = async () => {
      throw Object.assign(
        new (await import('#common/errors.js')).NemuError('NEMU_ERR_DICT_UNREACHABLE', 'redis at 127.0.0.1:1 did not answer within 200 ms'),
        {},
      );
    };
    const out = await handler(broken).h.review(review(pod({})));
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.[0]).toMatch(/^NEMU_ERR_DICT_UNREACHABLE: redis at 127.0.0.1:1/);
  });

  it('honours a stored skip rule for the pod’s Deployment', async () => {
    const { h } = handler();
    await new SkipRules(store).add({
      namespace: 'web',
      kind: 'Deployment',
      name: 'shop',
      verbs: ['image', 'env', 'tolerations'],
      createdAt: new Date().toISOString(),
    });
    const p = pod({
      labels: { 'pod-template-hash': '5d9f' },
      ownerReferences: [{ kind: 'ReplicaSet', name: 'shop-5d9f', controller: true, uid: 'x', apiVersion: 'apps/v1' }],
    });
    const out = await h.review(review(p));
    expect(out.response.patch).toBeUndefined();
  });
});

describe('the chain memo (reviews of an object answered before)', () => {
  // The Pod every replica of one ReplicaSet is at admission: no name yet, the same template.
  const replica = (deployment = 'web') =>
    pod(
      {
        labels: { nemu_label_team: 'nemu_label_value_pay', 'pod-template-hash': '7f' },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${deployment}-7f`, uid: 'rs-1', controller: true }],
      },
      [{ name: 'app', image: 'ubuntu:14.04', env: [{ name: 'DB', value: 'nemu_env_db' }], resources: { limits: { cpu: '2', memory: '1Gi' } } }],
    );
  /** The default chain, counting the mutators that ran. */
  const counted = () => {
    const runs = { count: 0 };
    const chain: Mutator[] = DEFAULT_CHAIN.map((m) => ({ ...m, mutate: (o, c) => (runs.count++, m.mutate(o, c)) }));
    return { runs, chain };
  };
  const memoCount = async (metrics: ReturnType<typeof createControllerMetrics>) =>
    Object.fromEntries((await metrics.memo.get()).values.map((v) => [v.labels.result, v.value]));

  it('answers a replica like the first without running the chain, with its own mutation id, label and log entry', async () => {
    const metrics = createControllerMetrics(false);
    const { runs, chain } = counted();
    const { h, mutationLog } = handler(undefined, { chain, metrics });
    const first = await h.review(review(replica(), { uid: 'u-1' }));
    const ranFirst = runs.count;
    const second = await h.review(review(replica(), { uid: 'u-2' }));
    expect(runs.count).toBe(ranFirst);
    expect(await memoCount(metrics)).toEqual({ miss: 1, hit: 1 });
    expect(withoutId(patchOf(second))).toEqual(withoutId(patchOf(first)));
    const ids = [first, second].map(
      (out) => (apply(replica(), patchOf(out)) as { metadata: { labels: Record<string, string> } }).metadata.labels[MUTATION_LABEL]!,
    );
    expect(new Set(ids).size).toBe(2);
    expect(ids.map((id, i) => [first, second][i]!.response.auditAnnotations?.mutation === id)).toEqual([true, true]);
    for (const [i, id] of ids.entries()) {
      const entry = await mutationLog.get(id);
      expect(entry).toMatchObject({
        id,
        reviewUid: `u-${i + 1}`,
        owner: { kind: 'ReplicaSet', name: 'web-7f' },
        verbs: ['labels', 'tolerations', 'env', 'image', 'resources'],
      });
      const mutated = apply(replica(), patchOf([first, second][i]!));
      expect(apply(mutated, entry!.reversePatch)).toEqual(replica());
    }
  });

  it('sees a dictionary value changed since at once', async () => {
    const metrics = createControllerMetrics(false);
    const dict = new MemoryDictionary(DICT);
    const { h } = handler(dict, { metrics });
    await h.review(review(replica()));
    await dict.set('nemu_env_db', 'postgres://new-primary');
    const after = apply(replica(), patchOf(await h.review(review(replica())))) as { spec: { containers: Array<{ env: unknown }> } };
    expect(after.spec.containers[0]!.env).toEqual([{ name: 'DB', value: 'postgres://new-primary' }]);
    expect(await memoCount(metrics)).toEqual({ miss: 1, stale: 1 });
    // and remembers the new answer
    await h.review(review(replica()));
    expect((await memoCount(metrics)).hit).toBe(1);
  });

  it('sees a recommendation changed since at once (telemetry refreshes, peak and off-peak)', async () => {
    let cpu = '300m';
    const telemetry: RecommendationSource = { name: 'telemetry', recommend: () => ({ requests: { cpu, memory: '256Mi' } }) };
    const { h } = handler(undefined, { telemetry });
    const requests = async () =>
      (apply(replica(), patchOf(await h.review(review(replica())))) as { spec: { containers: Array<{ resources: { requests: unknown } }> } }).spec
        .containers[0]!.resources.requests;
    expect(await requests()).toEqual({ cpu: '300m', memory: '256Mi' });
    cpu = '700m';
    expect(await requests()).toEqual({ cpu: '700m', memory: '256Mi' });
  });

  it('applies a skip rule stored since (a rollback) to the next replica', async () => {
    const skipRules = new SkipRules(store);
    const { h } = handler(undefined, { skipRules });
    expect(patchOf(await h.review(review(replica('rolled-back')))).length).toBeGreaterThan(0);
    await skipRules.add({
      namespace: 'web',
      kind: 'Deployment',
      name: 'rolled-back',
      verbs: ['labels', 'env', 'image', 'tolerations', 'resources'],
      createdAt: new Date().toISOString(),
    });
    const out = await h.review(review(replica('rolled-back')));
    expect(out.response.patch).toBeUndefined();
  });

  it('runs the chain again after a mutator failed instead of remembering the failure', async () => {
    const metrics = createControllerMetrics(false);
    let broken = true;
    const chain: Mutator[] = DEFAULT_CHAIN.map((m) =>
      m.verb === 'image'
        ? {
            ...m,
            mutate: (o, c) => {
              if (broken) throw new Error('registry policy unreadable');
              return m.mutate(o, c);
            },
          }
        : m,
    );
    const { h } = handler(undefined, { chain, metrics });
    const first = await h.review(review(replica()));
    expect(first.response.warnings?.join()).toContain('registry policy unreadable');
    broken = false;
    const second = apply(replica(), patchOf(await h.review(review(replica())))) as { spec: { containers: Array<{ image: string }> } };
    expect(second.spec.containers[0]!.image).toBe('ubuntu:20.04');
    expect(await memoCount(metrics)).toEqual({ miss: 2 });
  });
});

// Generated pods: placeholders that exist in the dictionary, ones that do not, plain entries.
const labelKey = fc.constantFrom('nemu_label_team', 'nemu_label_nope', 'app', 'example.com/x', 'nemu_label_team2');
const labelValue = fc.constantFrom('nemu_label_value_pay', 'nemu_label_value_nope', 'v1', '');
const annoKey = fc.constantFrom('nemu_anno_contact', 'nemu_anno_x', 'note', 'example.com/team');
const annoValue = fc.constantFrom('nemu_anno_value_mail', 'free text', 'nemu_anno_value_nope');
const container = fc.record({
  name: fc.constantFrom('a', 'b', 'c'),
  image: fc.constantFrom('ubuntu:14.04', 'ubuntu', 'registry:5000/x/ubuntu@sha256:' + 'c'.repeat(64), 'nginx:1', 'bad image', 'localhost/app:2'),
  env: fc.array(fc.record({ name: fc.constantFrom('A', 'B'), value: fc.constantFrom('nemu_env_db', 'nemu_env_missing', 'nemu_abc', 'plain') }), {
    maxLength: 3,
  }),
  resources: fc.record({
    limits: fc.record({ cpu: fc.constantFrom('1', '500m', '3'), memory: fc.constantFrom('1Gi', '100Mi', '1000') }, { requiredKeys: [] }),
  }),
});
const generatedPod = fc
  .record({
    labels: fc.dictionary(labelKey, labelValue, { maxKeys: 4 }),
    annotations: fc.dictionary(annoKey, annoValue, { maxKeys: 3 }),
    containers: fc.array(container, { minLength: 1, maxLength: 3 }),
    tolerations: fc.array(fc.constantFrom({ key: 'pay', operator: 'Exists' }, { key: 'other', value: 'x' }), { maxLength: 2 }),
  })
  .map(
    ({ labels, annotations, containers, tolerations }) => ({ ...pod({ labels, annotations }, containers), spec: { containers, tolerations } }) as KubeObject,
  );

describe('properties over generated pods', () => {
  const dict = new MemoryDictionary({ ...DICT, nemu_label_team2: 'example.com/team', nemu_abc: 'old-form' });

  it('the chain applied to its own output yields no patch (idempotence)', async () => {
    const { h } = handler(dict);
    await fc.assert(
      fc.asyncProperty(generatedPod, async (p) => {
        const first = await h.review(review(p, { dryRun: true }));
        const mutated = apply(p, patchOf(first));
        const second = await h.review(review(mutated, { dryRun: true }));
        expect(second.response.patch).toBeUndefined();
      }),
      { numRuns: 200 },
    );
  });

  it('an answer from the memo is the answer the chain gives (two reviews of each pod, memo on and off)', async () => {
    const { h: remembering } = handler(dict);
    const { h: fresh } = handler(dict, { memoEntries: 0 });
    await fc.assert(
      fc.asyncProperty(generatedPod, async (p) => {
        const expected = withoutId(patchOf(await fresh.review(review(p))));
        expect(withoutId(patchOf(await remembering.review(review(p))))).toEqual(expected);
        expect(withoutId(patchOf(await remembering.review(review(p))))).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });

  it('the reverse patch restores the original exactly', async () => {
    const { h, mutationLog } = handler(dict);
    await fc.assert(
      fc.asyncProperty(generatedPod, async (p) => {
        const out = await h.review(review(p));
        const ops = patchOf(out);
        if (ops.length === 0) return;
        const mutated = apply(p, ops) as { metadata: { labels: Record<string, string> } };
        const entry = await mutationLog.get(mutated.metadata.labels[MUTATION_LABEL]!);
        expect(apply(mutated as unknown as KubeObject, entry!.reversePatch)).toEqual(p);
      }),
      { numRuns: 100 },
    );
  });
});

describe('outage bounds', () => {
  /** A store that takes reads and writes and never answers (Redis gone, commands queued). */
  const hanging = Object.assign(Object.create(null) as object, {
    shared: false,
    get: () => new Promise(() => undefined),
    list: () => new Promise(() => undefined),
    batch: () => new Promise(() => undefined),
  }) as unknown as ConstructorParameters<typeof SkipRules>[0];

  it('a dictionary that does not answer costs a review its deadline, not more: admitted unchanged with NEMU_ERR_DICT_UNREACHABLE', async () => {
    const silent = new MemoryDictionary();
    silent.lookup = () => new Promise(() => undefined);
    const { h } = handler(silent, { deadlineMs: 100 });
    const started = performance.now();
    const out = await h.review(review(pod({ labels: { nemu_label_team: 'nemu_label_value_pay' } })));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.join()).toContain('NEMU_ERR_DICT_UNREACHABLE');
  });

  it('skip rules that cannot be read share the same deadline: admitted unchanged with NEMU_ERR_STORE', async () => {
    const { h } = handler(undefined, { deadlineMs: 100, skipRules: new SkipRules(hanging) });
    const started = performance.now();
    // a named Pod: its skip rules are looked up
    const out = await h.review(review(pod({ name: 'web-1', labels: { nemu_label_team: 'nemu_label_value_pay' } })));
    expect(performance.now() - started).toBeLessThan(1000);
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.join()).toContain('NEMU_ERR_STORE');
  });

  it('a mutation whose log entry cannot be written is not answered: admitted unmutated with NEMU_ERR_MUTATION_LOG, from the chain and from the memo', async () => {
    const refusing = Object.assign(Object.create(store) as LevelStore, {
      batch: () => Promise.reject(new Error('OOM command not allowed when used memory > maxmemory')),
    });
    const mutationLog = new MutationLog(refusing, silentLogger, { probeEveryMs: 60_000 });
    const { h } = handler(undefined, { mutationLog });
    for (const _ of [1, 2]) {
      const out = await h.review(review(pod({ labels: { nemu_label_team: 'nemu_label_value_pay' } })));
      expect(out.response).toMatchObject({ uid: 'u-1', allowed: true });
      expect(out.response.patch).toBeUndefined();
      expect(out.response.patchType).toBeUndefined();
      expect(out.response.warnings?.join()).toContain('NEMU_ERR_MUTATION_LOG');
    }
    mutationLog.close();
  });

  it('a mutation whose log entry the store does not confirm in time is not answered either', async () => {
    const mutationLog = new MutationLog(hanging as unknown as LevelStore, silentLogger, { timeoutMs: 100 });
    const { h } = handler(undefined, { mutationLog });
    const out = await h.review(review(pod({ labels: { nemu_label_team: 'nemu_label_value_pay' } })));
    expect(out.response.patch).toBeUndefined();
    expect(out.response.warnings?.join()).toMatch(/NEMU_ERR_MUTATION_LOG: .*within 100 ms/);
  });
});

describe('pods labelled nemutator.io/secrets=required', () => {
  const required = (over: Record<string, unknown> = {}) =>
    pod({ labels: { 'nemutator.io/secrets': 'required', ...over } }, [
      { name: 'app', image: 'app', command: ['/app'], env: [{ name: 'DB_PASSWORD', value: 'vault:secret/app/db#password' }] },
    ]);

  it('are refused with NEMU_ERR_SECRETS_REQUIRED when the dictionary cannot be read, while other pods are admitted unchanged', async () => {
    const broken = new MemoryDictionary();
    broken.lookup = () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    const { h } = handler(broken, { deadlineMs: 100 });
    const refused = await h.review(review(required()));
    expect(refused.response.allowed).toBe(false);
    expect(refused.response.patch).toBeUndefined();
    expect(refused.response.status).toMatchObject({
      code: 503,
      reason: 'ServiceUnavailable',
      message: expect.stringMatching(/^NEMU_ERR_SECRETS_REQUIRED: .*NEMU_ERR_DICT_UNREACHABLE/),
    });
    const other = await h.review(review(pod({ labels: { nemu_label_team: 'nemu_label_value_pay' } })));
    expect(other.response.allowed).toBe(true);
  });

  it('are refused when the secrets mutator fails, and admitted mutated when it works', async () => {
    const failing: Mutator = {
      verb: 'secrets',
      keys: () => [],
      mutate: () => {
        throw new Error('boom');
      },
    };
    const { h } = handler(undefined, { chain: [failing] });
    const refused = await h.review(review(required()));
    expect(refused.response.allowed).toBe(false);
    expect(refused.response.status?.message).toMatch(/^NEMU_ERR_SECRETS_REQUIRED: /);
    const working = handler().h;
    const admitted = await working.review(review(required()));
    expect(admitted.response.allowed).toBe(true);
    expect(JSON.stringify(patchOf(admitted))).toContain('nemu-exec');
  });
});
