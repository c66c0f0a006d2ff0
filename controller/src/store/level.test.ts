import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { LevelStore } from './level.ts';

describe('embedded store', () => {
  it('keeps what was written across a reopen', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'nemu-store-')), 'db');
    const s = await LevelStore.open(dir);
    await s.put('mutations/0001', { verbs: ['labels'] });
    await s.batch([
      { type: 'put', key: 'mutations/0002', value: { verbs: ['env'] } },
      { type: 'put', key: 'profiles/0001', value: { hz: 49 } },
    ]);
    await s.close();
    const again = await LevelStore.open(dir);
    expect(await again.get('mutations/0001')).toEqual({ verbs: ['labels'] });
    expect(await again.get('missing')).toBeUndefined();
    expect((await again.list('mutations/')).map((e) => e.key)).toEqual(['mutations/0001', 'mutations/0002']);
    expect((await again.list('mutations/', { reverse: true, limit: 1 })).map((e) => e.key)).toEqual(['mutations/0002']);
    expect((await again.list('mutations/', { after: 'mutations/0001' })).map((e) => e.key)).toEqual(['mutations/0002']);
    await again.del('mutations/0001');
    expect(await again.list('mutations/')).toHaveLength(1);
    await again.close();
  });

  it('says what to do when the state directory is in use by another process', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'nemu-store-')), 'db');
    const s = await LevelStore.open(dir);
    await expect(LevelStore.open(dir)).rejects.toThrow(/another nemutator process.*--state-dir/);
    await s.close();
  });
});
