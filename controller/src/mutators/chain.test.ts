import { describe, expect, it } from 'vitest';

import { chainKeys, DEFAULT_CHAIN, runChain } from './chain.ts';
import { enforce, parseImage } from './image.ts';
import { formatBytes, formatCpu, parseQuantity } from './quantity.ts';
import { parseRatioPolicy, RatioSource } from './resources.ts';
import { type KubeObject, type Mutator, parseSkipVerbs, type Verb, type WorkloadKind } from './types.ts';
import { Draft, jsonClone } from './workload.ts';

const DIGEST = 'sha256:' + 'a'.repeat(64);

function run(
  object: KubeObject,
  dict: Record<string, string>,
  kind: WorkloadKind = 'Pod',
  extra: { operation?: 'CREATE' | 'UPDATE'; ratio?: string; skip?: string } = {},
) {
  const ctx = { kind, namespace: 'web' };
  const keys = chainKeys(DEFAULT_CHAIN, object, ctx);
  const dictionary = new Map(Object.entries(dict).filter(([k]) => keys.includes(k)));
  const recommendations = extra.ratio ? [new RatioSource(parseRatioPolicy(extra.ratio))] : [];
  return runChain(DEFAULT_CHAIN, object, { ...ctx, operation: extra.operation ?? 'CREATE', dictionary, recommendations }, parseSkipVerbs(extra.skip).verbs);
}

function pod(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', namespace: 'web', ...metadata }, spec };
}

describe('the mutator chain on a Pod', () => {
  it('translates label and annotation keys and values through the dictionary', () => {
    const r = run(
      pod(
        { containers: [{ name: 'a', image: 'nginx' }] },
        {
          labels: { nemu_label_k1: 'nemu_label_value_v1', keep: 'me' },
          annotations: { nemu_anno_k2: 'plain', other: 'nemu_anno_value_v2' },
        },
      ),
      { nemu_label_k1: 'team.example.com/owner', nemu_label_value_v1: 'payments', nemu_anno_k2: 'example.com/contact', nemu_anno_value_v2: 'ops@example.com' },
    );
    const meta = r.object.metadata as Record<string, Record<string, string>>;
    expect(meta.labels).toEqual({ 'team.example.com/owner': 'payments', keep: 'me' });
    expect(meta.annotations).toEqual({ 'example.com/contact': 'plain', other: 'ops@example.com' });
    expect(r.applied).toEqual(['labels', 'annotations']);
  });

  it('leaves a placeholder without a dictionary entry and says so', () => {
    const original = pod({ containers: [{ name: 'a', image: 'nginx' }] }, { labels: { nemu_label_missing: 'x' } });
    const r = run(original, {});
    expect(r.object).toBe(original);
    expect(r.warnings.join()).toContain('no dictionary entry for label key nemu_label_missing');
  });

  it('refuses a translation that is not a valid label key', () => {
    const r = run(pod({ containers: [] }, { labels: { nemu_label_k: 'v' } }), { nemu_label_k: 'not a label!' });
    expect(r.applied).toEqual([]);
    expect(r.warnings.join()).toContain('not a valid label key');
  });

  it('replaces env placeholders (new and the seed’s older form) without naming the values', () => {
    const r = run(
      pod({
        initContainers: [{ name: 'init', image: 'busybox', env: [{ name: 'OLD', value: 'nemu_abc123' }] }],
        containers: [
          {
            name: 'app',
            image: 'busybox',
            env: [
              { name: 'DB', value: 'nemu_env_db1' },
              { name: 'PLAIN', value: 'x' },
              { name: 'GONE', value: 'nemu_env_nope' },
            ],
          },
        ],
      }),
      { nemu_abc123: 'old-form-value', nemu_env_db1: 'postgres://db:5432' },
    );
    const spec = r.object.spec as { initContainers: Array<{ env: unknown[] }>; containers: Array<{ env: unknown[] }> };
    expect(spec.initContainers[0]!.env).toEqual([{ name: 'OLD', value: 'old-form-value' }]);
    expect(spec.containers[0]!.env).toEqual([
      { name: 'DB', value: 'postgres://db:5432' },
      { name: 'PLAIN', value: 'x' },
      { name: 'GONE', value: 'nemu_env_nope' },
    ]);
    expect(r.warnings.join()).toContain('GONE');
    expect(r.warnings.join()).not.toContain('postgres');
  });

  it('enforces image tags and digests, keeping registries with ports', () => {
    const r = run(
      pod({
        containers: [
          { name: 'a', image: 'ubuntu:14.04' },
          { name: 'b', image: 'registry.local:5000/team/app:1.0' },
          { name: 'c', image: `quay.io/org/tool@${'sha256:' + 'b'.repeat(64)}` },
          { name: 'd', image: 'localhost:5000/solo' },
        ],
      }),
      { nemu_image_ubuntu: '20.04', 'nemu_image_team/app': '2.0', nemu_image_app: 'never-used', nemu_image_tool: DIGEST, nemu_image_solo: `1.2@${DIGEST}` },
    );
    expect((r.object.spec as { containers: Array<{ image: string }> }).containers.map((c) => c.image)).toEqual([
      'ubuntu:20.04',
      'registry.local:5000/team/app:2.0',
      `quay.io/org/tool@${DIGEST}`,
      `localhost:5000/solo:1.2@${DIGEST}`,
    ]);
  });

  it('adds tolerations from matching rules once', () => {
    const rules = JSON.stringify([
      { match: { namespace: 'web', labels: { tier: 'gpu' } }, tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] },
      { match: { namespace: 'other' }, tolerations: [{ key: 'never', operator: 'Exists' }] },
      {
        match: {},
        tolerations: [
          { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
          { key: 'spot', operator: 'Equal', value: 'true' },
        ],
      },
    ]);
    const r = run(pod({ containers: [], tolerations: [{ key: 'spot', value: 'true' }] }, { labels: { nemu_label_t: 'gpu' } }), {
      nemu_tolerations: rules,
      nemu_label_t: 'tier',
    });
    expect((r.object.spec as { tolerations: unknown[] }).tolerations).toEqual([
      { key: 'spot', value: 'true' },
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ]);
  });

  it('reports a malformed toleration rule document instead of failing', () => {
    const r = run(pod({ containers: [] }), { nemu_tolerations: '[{"tolerations": [{"operator": "Sometimes"}]}]' });
    expect(r.applied).toEqual([]);
    expect(r.warnings.join()).toContain('toleration 0 is not a valid toleration');
  });

  it('derives requests from limits by the ratio, only where no person chose them', () => {
    const r = run(
      pod({
        containers: [
          { name: 'a', image: 'x', resources: { limits: { cpu: '1', memory: '1Gi' } } },
          { name: 'b', image: 'x', resources: { limits: { cpu: '2', memory: '512Mi' }, requests: { cpu: '2', memory: '100Mi' } } },
          { name: 'c', image: 'x', resources: { limits: { 'nvidia.com/gpu': '1' } } },
        ],
      }),
      {},
      'Pod',
      { ratio: 'cpu=4,memory=2' },
    );
    const cs = (r.object.spec as { containers: Array<{ resources: unknown }> }).containers;
    expect(cs[0]!.resources).toEqual({ limits: { cpu: '1', memory: '1Gi' }, requests: { cpu: '250m', memory: '512Mi' } });
    expect(cs[1]!.resources).toEqual({ limits: { cpu: '2', memory: '512Mi' }, requests: { cpu: '500m', memory: '100Mi' } });
    expect(cs[2]!.resources).toEqual({ limits: { 'nvidia.com/gpu': '1' } });
  });

  it('skips the verbs it is told to, with `containers` standing for every container mutator', () => {
    const object = pod({ containers: [{ name: 'a', image: 'ubuntu:1', env: [{ name: 'E', value: 'nemu_env_e' }] }] }, { labels: { nemu_label_k: 'v' } });
    const dict = { nemu_image_ubuntu: '2', nemu_env_e: 'secret', nemu_label_k: 'real' };
    expect(run(object, dict, 'Pod', { skip: 'env labels' }).applied).toEqual(['image']);
    expect(run(object, dict, 'Pod', { skip: 'containers' }).applied).toEqual(['labels']);
    expect(parseSkipVerbs('env bogus, image').unknown).toEqual(['bogus']);
  });
});

describe('mutators sharing one run of the chain', () => {
  // Mutators that set one field of the first container, through the run's drafts.
  const setting = (verb: Verb, field: string, value: string): Mutator => ({
    verb,
    keys: () => [],
    mutate: (object, ctx) => {
      const draft = new Draft(object, ctx.drafts);
      draft.at(['spec', 'containers', 0])[field] = value;
      return draft.result();
    },
  });
  const retag = setting('image', 'image', 'nginx:2');
  const rename = setting('resources', 'name', 'renamed');
  // Changes the first mutator's copy in place, then fails: its half-made change must not stay.
  const halfThenThrow: Mutator = {
    verb: 'env',
    keys: () => [],
    mutate: (object, ctx) => {
      new Draft(object, ctx.drafts).at(['spec', 'containers', 0]).image = 'half-made';
      throw new Error('boom');
    },
  };
  const ctx = { kind: 'Pod' as const, namespace: 'web', operation: 'CREATE' as const, dictionary: new Map<string, string>(), recommendations: [] };

  it('counts a mutator that only changed copies made earlier in the run as applied, and never touches the input', () => {
    const original = pod({ containers: [{ name: 'a', image: 'nginx:1' }] });
    const before = jsonClone(original);
    // rename's Draft hands back the very root retag made: its edit still counts.
    const r = runChain([retag, rename], original, ctx);
    expect(r.applied).toEqual(['image', 'resources']);
    expect((r.object.spec as { containers: unknown[] }).containers[0]).toEqual({ name: 'renamed', image: 'nginx:2' });
    expect(original).toEqual(before);
  });

  it('drops the half-made change of a mutator that throws, keeps the others and says which failed, in chain order', () => {
    const original = pod({ containers: [{ name: 'a', image: 'nginx:1' }] });
    const before = jsonClone(original);
    const r = runChain([retag, halfThenThrow, rename], original, ctx);
    expect((r.object.spec as { containers: unknown[] }).containers[0]).toEqual({ name: 'renamed', image: 'nginx:2' });
    expect(r.applied).toEqual(['image', 'resources']);
    expect(r.failed).toEqual(['env']);
    expect(r.warnings).toEqual(['nemutator env: skipped, the mutator failed on this object (boom)']);
    expect(original).toEqual(before);
  });
});

describe('the mutator chain on a Deployment', () => {
  const deployment = (): KubeObject => ({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', labels: { nemu_label_team: 'a' } },
    spec: {
      selector: { matchLabels: { nemu_label_app: 'nemu_label_value_app', nemu_label_other: 'x' } },
      template: {
        metadata: { labels: { nemu_label_app: 'nemu_label_value_app', nemu_label_other: 'x', nemu_label_extra: 'y' } },
        spec: { containers: [{ name: 'web', image: 'nginx:1.0' }] },
      },
    },
  });
  const dict = {
    nemu_selectors_replace_list: '["nemu_label_app"]',
    nemu_label_app: 'app',
    nemu_label_value_app: 'storefront',
    nemu_label_other: 'other',
    nemu_label_extra: 'extra',
    nemu_label_team: 'team',
    nemu_image_nginx: '1.25',
  };

  it('translates listed selector entries and the template labels together, leaving unlisted ones consistent', () => {
    const r = run(deployment(), dict, 'Deployment');
    const spec = r.object.spec as {
      selector: { matchLabels: Record<string, string> };
      template: { metadata: { labels: Record<string, string> }; spec: { containers: Array<{ image: string }> } };
    };
    expect(spec.selector.matchLabels).toEqual({ app: 'storefront', nemu_label_other: 'x' });
    expect(spec.template.metadata.labels).toEqual({ app: 'storefront', nemu_label_other: 'x', extra: 'y' });
    expect(spec.template.spec.containers[0]!.image).toBe('nginx:1.25');
    expect((r.object.metadata as { labels: unknown }).labels).toEqual({ team: 'a' });
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(spec.template.metadata.labels[k]).toBe(v);
  });

  it('never touches the selector on UPDATE (it is immutable)', () => {
    const r = run(deployment(), dict, 'Deployment', { operation: 'UPDATE' });
    expect((r.object.spec as { selector: unknown }).selector).toEqual(deployment().spec && (deployment().spec as { selector: unknown }).selector);
  });
});

describe('quantities and image references', () => {
  it('parses and formats Kubernetes quantities', () => {
    expect(parseQuantity('500m')).toBe(0.5);
    expect(parseQuantity('1Gi')).toBe(2 ** 30);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(parseQuantity('lots')).toBeUndefined();
    expect(formatCpu(0.3333)).toBe('334m');
    expect(formatCpu(2)).toBe('2');
    expect(formatBytes(2 ** 29)).toBe('512Mi');
    expect(formatBytes(1000)).toBe('1000');
  });

  it('refuses a ratio below 1 naming the expected form', () => {
    expect(() => parseRatioPolicy('0.5')).toThrow(/number ≥ 1/);
    expect(parseRatioPolicy('2')).toEqual({ cpu: 2, memory: 2 });
  });

  it('parses references with registries, ports, tags and digests', () => {
    expect(parseImage('registry:5000/a/b:1')).toMatchObject({ registry: 'registry:5000', path: 'a/b', name: 'b', tag: '1' });
    expect(parseImage('ubuntu')).toMatchObject({ repository: 'ubuntu', name: 'ubuntu' });
    expect(parseImage('bad image')).toBeUndefined();
    expect(enforce(parseImage('ubuntu:1')!, 'not a tag!')).toBeUndefined();
  });
});
