import { describe, expect, it } from 'vitest';

import { ChainMemo, type MemoEntry } from './memo.ts';

const entry = (applied: MemoEntry['applied']): MemoEntry => ({ keys: [], values: [], recommendations: [], applied, warnings: [] });

describe('ChainMemo', () => {
  it('forgets the least recently used object first when full', () => {
    const memo = new ChainMemo(2);
    const key = (n: string) => memo.key('Pod', 'CREATE', 'web', new Set(), `{"n":"${n}"}`)!;
    memo.set(key('a'), entry(['labels']));
    memo.set(key('b'), entry(['env']));
    expect(memo.get(key('a'))?.applied).toEqual(['labels']);
    memo.set(key('c'), entry(['image']));
    expect(memo.size).toBe(2);
    expect(memo.get(key('b'))).toBeUndefined();
    expect(memo.get(key('a'))?.applied).toEqual(['labels']);
  });

  it('holds at most maxBytes of keys and patches, and never one object over an eighth of it', () => {
    const memo = new ChainMemo(100, 8000);
    const key = (n: number, size: number) => memo.key('Pod', 'CREATE', 'web', new Set(), `{"n":${n},"pad":"${'x'.repeat(size)}"}`)!;
    memo.set(key(0, 2000), entry(['labels']));
    expect(memo.size).toBe(0);
    for (let n = 1; n <= 10; n++) memo.set(key(n, 900), { ...entry(['env']), forward: '[]', reverse: '[]' });
    expect(memo.heldBytes).toBeLessThanOrEqual(8000);
    expect(memo.size).toBe(Math.floor(8000 / (key(1, 900).length + 4)));
    expect(memo.get(key(10, 900))).toBeDefined();
    expect(memo.get(key(1, 900))).toBeUndefined();
  });

  it('keys on the kind, operation, namespace and skipped verbs as well as the object', () => {
    const memo = new ChainMemo(8);
    const keys = [
      memo.key('Pod', 'CREATE', 'web', new Set(), '{}'),
      memo.key('Deployment', 'CREATE', 'web', new Set(), '{}'),
      memo.key('Pod', 'UPDATE', 'web', new Set(), '{}'),
      memo.key('Pod', 'CREATE', 'shop', new Set(), '{}'),
      memo.key('Pod', 'CREATE', 'web', new Set(['env']), '{}'),
    ];
    expect(new Set(keys).size).toBe(keys.length);
    expect(memo.key('Pod', 'CREATE', 'web', new Set(['image', 'env']), '{}')).toBe(memo.key('Pod', 'CREATE', 'web', new Set(['env', 'image']), '{}'));
  });

  it('remembers nothing when off', () => {
    expect(new ChainMemo(0).key('Pod', 'CREATE', 'web', new Set(), '{}')).toBeUndefined();
  });

  it('is current only while every dictionary value and recommendation reads the same', () => {
    let cpu = '1';
    const source = { name: 't', recommend: () => ({ requests: { cpu } }) };
    const recorded: MemoEntry['recommendations'] = [];
    const [recording] = ChainMemo.recording([source], recorded);
    recording!.recommend({ namespace: 'web', kind: 'Pod', container: 'app', limits: {}, requests: {} });
    const e: MemoEntry = { ...entry(['resources']), keys: ['a', 'b'], values: ['1', undefined], recommendations: recorded };
    expect(ChainMemo.current(e, new Map([['a', '1']]))).toBe(true);
    expect(ChainMemo.current(e, new Map([['a', '2']]))).toBe(false);
    expect(
      ChainMemo.current(
        e,
        new Map([
          ['a', '1'],
          ['b', 'new'],
        ]),
      ),
    ).toBe(false);
    cpu = '2';
    expect(ChainMemo.current(e, new Map([['a', '1']]))).toBe(false);
  });
});
