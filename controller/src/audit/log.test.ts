import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { silentLogger } from '#common/log.js';

import { LevelStore } from '../store/level.ts';
import { type AuditEntry, AuditLog } from './log.ts';

let dir: string;
let store: LevelStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-audit-'));
  store = await LevelStore.open(dir);
});
afterAll(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const denied = (key: string): Omit<AuditEntry, 'id' | 'time'> => ({
  user: 'system:serviceaccount:shop:nosy',
  groups: ['system:serviceaccounts'],
  action: 'update dictionary',
  method: 'PUT',
  path: `/api/v1/dictionary/${key}`,
  target: { key },
  outcome: 'denied',
  status: 403,
  code: 'NEMU_ERR_FORBIDDEN',
});

describe('audit log', () => {
  it('folds a flood of refusals into one record per user, action and hour, with long request text cut', async () => {
    let now = Date.UTC(2026, 11, 7, 12);
    const audit = new AuditLog(store, silentLogger, { maxAgeMs: 30 * 86_400_000, now: () => now });
    for (let i = 0; i < 2000; i++) {
      now += 10; // 20 s of refusals at 100/s
      await audit.record(denied(`k${i}-${'x'.repeat(16_000)}`));
    }
    const records = await audit.list({ user: 'system:serviceaccount:shop:nosy', limit: 1000 });
    expect(records).toHaveLength(1);
    expect(records[0]!.count).toBeGreaterThanOrEqual(1000); // rewritten at most every 10 s: at most 10 s behind
    expect(JSON.stringify(records[0]).length).toBeLessThan(2000);
    // an hour later a new record opens; a success is its own record
    now += 3600_000;
    await audit.record(denied('again'));
    await audit.record({ ...denied('ok'), outcome: 'succeeded', status: 200, user: 'alice' });
    const after = await audit.list({ limit: 1000 });
    expect(after.map((e) => [e.user, e.outcome, e.count ?? 1])).toEqual([
      ['alice', 'succeeded', 1],
      ['system:serviceaccount:shop:nosy', 'denied', 1],
      ['system:serviceaccount:shop:nosy', 'denied', records[0]!.count],
    ]);
  });
});
