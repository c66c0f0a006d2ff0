import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { LevelStore } from '../store/level.ts';
import { EmbeddedSecretStore } from './embedded.ts';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

async function open(dir = mkdtempSync(join(tmpdir(), 'nemu-kv-'))) {
  dirs.push(dir);
  const level = await LevelStore.open(dir);
  return { dir, level, kv: new EmbeddedSecretStore(level) };
}

describe('the embedded secret store', () => {
  it('numbers concurrent writes of a path 1..n, tells each to listeners, and keeps the newest across a reopen', async () => {
    const { dir, level, kv } = await open();
    const seen: number[] = [];
    kv.onChange((path, version) => path === 'secret/app/db' && seen.push(version));
    const written = await Promise.all(Array.from({ length: 20 }, (_, i) => kv.put('secret/app/db', { password: `v${i}` })));
    expect(written.map((w) => w.version).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    await kv.put('secret/other', { a: '1', b: '2' });
    expect(await kv.list()).toEqual([
      expect.objectContaining({ path: 'secret/app/db', version: 20, keys: ['password'] }),
      expect.objectContaining({ path: 'secret/other', version: 1, keys: ['a', 'b'] }),
    ]);
    await level.close();
    const again = new EmbeddedSecretStore(await LevelStore.open(dir));
    expect((await again.read('secret/app/db'))?.version).toBe(20);
    expect((await again.put('secret/app/db', { password: 'next' })).version).toBe(21);
  });

  it('refuses data a reference cannot name with NEMU_ERR_BAD_REQUEST, never repeating a value', async () => {
    const { kv } = await open();
    const value = 'do-not-echo-me';
    for (const data of [{}, { 'a#b': value }, { 'a b': value }, { k: 42 }, [value]] as unknown as Array<Record<string, unknown>>) {
      const err = await kv.put('secret/app/db', data).then(
        () => undefined,
        (e: { code: string; status: number; message: string }) => e,
      );
      expect(err).toMatchObject({ code: 'NEMU_ERR_BAD_REQUEST', status: 400 });
      expect(err!.message).not.toContain(value);
    }
    expect(await kv.read('secret/app/db')).toBeUndefined();
  });
});
