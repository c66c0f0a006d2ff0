// The double's patch and selector engines on their own: strategic merge patch directives
// as kubectl emits them, RFC 7386 merge patch, and label selectors in both their string
// and structured forms (with properties relating the forms).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { applyPatchOfType, mergePatch } from '../harness/kube/patch.ts';
import {
  formatLabelSelectorObject,
  type LabelSelectorObject,
  matchesLabelSelector,
  matchesLabelSelectorObject,
  parseFieldSelector,
  parseLabelSelector,
} from '../harness/kube/selectors.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const smp = (original: Obj, patch: Obj): Obj => applyPatchOfType('strategic', original, patch);

const podSpec = (): Obj => ({
  spec: {
    containers: [
      {
        name: 'a',
        image: 'a:1',
        env: [
          { name: 'X', value: '1' },
          { name: 'Y', value: '2' },
        ],
        ports: [{ containerPort: 80, protocol: 'TCP' }],
      },
      { name: 'b', image: 'b:1' },
    ],
    volumes: [{ name: 'data', emptyDir: {} }],
    tolerations: [{ key: 'k', operator: 'Exists' }],
  },
  metadata: { finalizers: ['one'], labels: { app: 'x' } },
});

describe('strategic merge patch', () => {
  it('merges lists by their merge keys and replaces lists without one', () => {
    const out = smp(podSpec(), {
      spec: {
        containers: [
          { name: 'a', image: 'a:2', env: [{ name: 'Y', value: '3' }] },
          { name: 'c', image: 'c:1' },
        ],
        tolerations: [{ key: 'other', operator: 'Exists' }],
      },
      metadata: { finalizers: ['two'] },
    });
    expect(out.spec.containers.map((c: Obj) => `${c.name}=${c.image}`)).toEqual(['a=a:2', 'b=b:1', 'c=c:1']);
    expect(out.spec.containers[0].env).toEqual([
      { name: 'X', value: '1' },
      { name: 'Y', value: '3' },
    ]);
    expect(out.spec.containers[0].ports).toEqual([{ containerPort: 80, protocol: 'TCP' }]);
    expect(out.spec.tolerations).toEqual([{ key: 'other', operator: 'Exists' }]);
    expect(out.metadata.finalizers).toEqual(['one', 'two']);
  });

  it('honours $patch, $setElementOrder, $retainKeys, $deleteFromPrimitiveList and null', () => {
    const out = smp(podSpec(), {
      spec: {
        '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }],
        containers: [{ name: 'a', env: [{ name: 'X', $patch: 'delete' }] }],
        volumes: [{ name: 'data', $retainKeys: ['name', 'configMap'], configMap: { name: 'cfg' } }],
      },
      metadata: { '$deleteFromPrimitiveList/finalizers': ['one'], labels: { app: null, tier: 'web' } },
    });
    expect(out.spec.containers.map((c: Obj) => c.name)).toEqual(['b', 'a']);
    expect(out.spec.containers[1].env).toEqual([{ name: 'Y', value: '2' }]);
    expect(out.spec.volumes).toEqual([{ name: 'data', configMap: { name: 'cfg' } }]);
    expect(out.metadata).toEqual({ finalizers: [], labels: { tier: 'web' } });
    const replaced = smp(podSpec(), { spec: { containers: [{ name: 'z', image: 'z:1' }, { $patch: 'replace' }] } });
    expect(replaced.spec.containers).toEqual([{ name: 'z', image: 'z:1' }]);
    const mapReplaced = smp(podSpec(), { metadata: { labels: { $patch: 'replace', only: 'this' } } });
    expect(mapReplaced.metadata.labels).toEqual({ only: 'this' });
  });

  it('merges Service ports on port and container ports on containerPort', () => {
    const svc = smp(
      {
        spec: {
          ports: [
            { port: 80, targetPort: 8080 },
            { port: 443, targetPort: 8443 },
          ],
        },
      },
      { spec: { ports: [{ port: 443, targetPort: 9443 }] } },
    );
    expect(svc.spec.ports).toEqual([
      { port: 80, targetPort: 8080 },
      { port: 443, targetPort: 9443 },
    ]);
  });

  it('equals an RFC 7386 merge patch when no lists are involved (property)', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'labels', 'spec');
    const leaf = fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.boolean());
    const doc = fc.letrec<{ node: Obj }>((tie) => ({ node: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, leaf, tie('node')), { maxKeys: 4 }) })).node;
    const patch = fc.letrec<{ node: Obj }>((tie) => ({
      node: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, leaf, fc.constant(null), tie('node')), { maxKeys: 4 }),
    })).node;
    fc.assert(
      fc.property(doc, patch, (d, p) => {
        expect(smp(structuredClone(d), p)).toEqual(mergePatch(structuredClone(d), p));
      }),
    );
  });

  it('rejects list items without their merge key', () => {
    expect(() => smp(podSpec(), { spec: { containers: [{ image: 'x' }] } })).toThrow(/does not contain declared merge key: name/);
  });
});

describe('selectors', () => {
  it('parses the label selector grammar and matches like labels.Parse', () => {
    const labels = { app: 'web', tier: 'front', version: '3' };
    const cases: [string, boolean][] = [
      ['app=web', true],
      ['app==web,tier!=back', true],
      ['app in (web, api),tier notin (back)', true],
      ['app,!legacy', true],
      ['!app', false],
      ['version>2,version<4', true],
      ['missing!=x', true],
      ['missing in (x)', false],
      ['', true],
    ];
    for (const [s, want] of cases) expect(matchesLabelSelector(parseLabelSelector(s), labels), s).toBe(want);
    expect(() => parseLabelSelector('app in (web')).toThrow();
    expect(() => parseLabelSelector('-bad=x')).toThrow();
    expect(() => parseFieldSelector('spec.other=x', ['spec.nodeName'])).toThrow(/field label not supported: spec.other/);
    expect(parseFieldSelector('spec.nodeName=n1,metadata.name!=p', ['spec.nodeName'])).toEqual([
      { field: 'spec.nodeName', op: '=', value: 'n1' },
      { field: 'metadata.name', op: '!=', value: 'p' },
    ]);
  });

  it('a structured selector and its string form select the same label sets (property)', () => {
    const key = fc.constantFrom('app', 'tier', 'example.com/team', 'x');
    const value = fc.constantFrom('a', 'b', 'c');
    const expr = fc.oneof(
      fc.record({ key, operator: fc.constantFrom('In', 'NotIn'), values: fc.uniqueArray(value, { minLength: 1, maxLength: 3 }) }),
      fc.record({ key, operator: fc.constantFrom('Exists', 'DoesNotExist') }),
    );
    const selector: fc.Arbitrary<LabelSelectorObject> = fc.record({
      matchLabels: fc.dictionary(key, value, { maxKeys: 2 }),
      matchExpressions: fc.array(expr, { maxLength: 3 }),
    });
    fc.assert(
      fc.property(selector, fc.dictionary(key, value), (sel, labels) => {
        expect(matchesLabelSelector(parseLabelSelector(formatLabelSelectorObject(sel)), labels)).toBe(matchesLabelSelectorObject(sel, labels));
      }),
    );
    expect(matchesLabelSelectorObject(undefined, { app: 'a' })).toBe(false); // nil selects nothing
    expect(matchesLabelSelectorObject({}, { app: 'a' })).toBe(true); // empty selects everything
  });
});
