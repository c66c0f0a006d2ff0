// The diff and the copy-on-write applier, checked against an independent JSON Patch
// implementation (fast-json-patch) over generated documents that share structure the way
// the mutators' drafts share it with the original.
import fc from 'fast-check';
import fjp, { type Operation } from 'fast-json-patch';
import { describe, expect, it } from 'vitest';

import { applies, applyPatch, deepEqual, diff, parsePointer, PatchError, pointer } from './patch.ts';

const key = fc.constantFrom('a', 'b', 'example.com/team', 'x~y', 'nemu_label_z', '0', '');
const leaf = fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom('v', '', 'w/~'), fc.boolean(), fc.constant(null));
const doc = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 4 }),
  object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
})).object as fc.Arbitrary<Record<string, unknown>>;

/** `b` built from `a` the way a mutator's draft is: changed paths copied, the rest shared. */
const edited = doc.chain((a) =>
  fc.tuple(fc.constant(a), doc, fc.array(fc.tuple(key, fc.boolean()), { maxLength: 4 })).map(([a, other, edits]) => {
    const b: Record<string, unknown> = { ...a };
    for (const [k, drop] of edits) {
      if (drop) delete b[k];
      else b[k] = other[k] ?? a[k] ?? other;
    }
    return [a, b] as const;
  }),
);

const frozenCopy = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('diff', () => {
  it('forward turns the original into the mutated document and reverse turns it back (checked with fast-json-patch)', () => {
    fc.assert(
      fc.property(fc.oneof(edited, fc.tuple(doc, doc)), ([a, b]) => {
        const before = frozenCopy(a);
        const { forward, reverse } = diff(a, b);
        expect(fjp.applyPatch(frozenCopy(a), frozenCopy(forward), true, false).newDocument).toEqual(frozenCopy(b));
        expect(fjp.applyPatch(frozenCopy(b), frozenCopy(reverse), true, false).newDocument).toEqual(frozenCopy(a));
        expect(applies(a, forward, b)).toBe(true);
        expect(applies(b, reverse, a)).toBe(true);
        expect(a).toEqual(before); // neither the diff nor the check changed the original
      }),
      { numRuns: 2000 },
    );
  });

  it('is empty for equal documents, and ignores keys set to undefined', () => {
    expect(diff({ a: { b: [1, 2] } }, { a: { b: [1, 2] } })).toEqual({ forward: [], reverse: [] });
    expect(diff({ a: 1, gone: undefined }, { a: 1 })).toEqual({ forward: [], reverse: [] });
  });

  it('escapes / and ~ in keys, and orders trailing array changes so each path is valid', () => {
    const { forward, reverse } = diff({ labels: { nemu_label_team: 'x' }, list: [1, 2, 3] }, { labels: { 'example.com/team': 'x', 'a~b': 'y' }, list: [1] });
    expect(forward).toEqual([
      { op: 'remove', path: '/labels/nemu_label_team' },
      { op: 'add', path: '/labels/example.com~1team', value: 'x' },
      { op: 'add', path: '/labels/a~0b', value: 'y' },
      { op: 'remove', path: '/list/2' },
      { op: 'remove', path: '/list/1' },
    ]);
    expect(reverse.filter((o) => o.path.startsWith('/list'))).toEqual([
      { op: 'add', path: '/list/1', value: 2 },
      { op: 'add', path: '/list/2', value: 3 },
    ]);
  });
});

describe('applyPatch', () => {
  it('agrees with fast-json-patch and leaves its input alone, sharing what the patch does not touch', () => {
    const a = { spec: { containers: [{ name: 'app', env: [{ name: 'A', value: 'x' }] }], volumes: [{ name: 'v' }] } };
    const before = frozenCopy(a);
    const patch: Operation[] = [
      { op: 'replace', path: '/spec/containers/0/env/0/value', value: 'y' },
      { op: 'add', path: '/spec/containers/0/env/-', value: { name: 'B', value: 'z' } },
      { op: 'add', path: '/metadata', value: { labels: {} } },
      { op: 'add', path: '/metadata/labels/example.com~1team', value: 'pay' },
      { op: 'test', path: '/spec/containers/0/name', value: 'app' },
      { op: 'remove', path: '/spec/containers/0/env/0' },
    ];
    const out = applyPatch(a, patch);
    expect(out).toEqual(fjp.applyPatch(frozenCopy(a), frozenCopy(patch), true, false).newDocument);
    expect(a).toEqual(before);
    expect(out.spec.volumes).toBe(a.spec.volumes);
  });

  it('refuses an operation that does not apply, naming it', () => {
    const a = { list: [1], map: { k: 1 } };
    const refused = (op: Operation) => () => applyPatch(a, [op]);
    expect(refused({ op: 'replace', path: '/map/missing', value: 1 })).toThrow(new PatchError('operation 0 (replace /map/missing): path does not exist'));
    expect(refused({ op: 'remove', path: '/list/1' })).toThrow(/array index out of range/);
    expect(refused({ op: 'add', path: '/list/2', value: 1 })).toThrow(/array index out of range/);
    expect(refused({ op: 'add', path: '/list/01', value: 1 })).toThrow(/not an array index/);
    expect(refused({ op: 'add', path: '/nope/deeper', value: 1 })).toThrow(/path does not exist/);
    expect(refused({ op: 'test', path: '/map/k', value: 2 })).toThrow(/test failed/);
    expect(refused({ op: 'add', path: 'map', value: 1 })).toThrow(/not a JSON pointer/);
    expect(refused({ op: 'move', from: '/map/k', path: '/map/j' })).toThrow(/not supported/);
    expect(applies(a, [{ op: 'remove', path: '/map/missing' }], a)).toBe(false);
  });

  it('reads pointers as RFC 6901 says', () => {
    expect(parsePointer('')).toEqual([]);
    expect(parsePointer('/')).toEqual(['']);
    expect(parsePointer('/a~1b/c~0d/~01')).toEqual(['a/b', 'c~d', '~1']);
    expect(parsePointer('/a~2')).toBeUndefined();
    expect(parsePointer('a')).toBeUndefined();
    expect(pointer('metadata', 'labels', 'example.com/a~b')).toBe('/metadata/labels/example.com~1a~0b');
  });
});

describe('deepEqual', () => {
  it('compares own keys only, also for keys named like Object.prototype members', () => {
    const parsed = JSON.parse('{"__proto__": {}, "x": 1}') as Record<string, unknown>;
    expect(deepEqual(parsed, { x: 1, y: 2 })).toBe(false);
    expect(deepEqual({ constructor: {} }, {})).toBe(false);
    expect(deepEqual({ a: [1, { b: null }], c: undefined }, { a: [1, { b: null }] })).toBe(true);
  });
});
