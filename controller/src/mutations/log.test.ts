import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ErrorCodes, NemuError } from '#common/errors.js';
import { silentLogger } from '#common/log.js';
import { until } from '#test/harness/wait.js';

import { LevelStore } from '../store/level.ts';
import type { Store, StoreOp } from '../store/store.ts';
import { mutationId } from './id.ts';
import { type MutationHead, MutationLog } from './log.ts';

/** The embedded store, with writes that can be refused or held back, and counted. */
class FaultyStore {
  batches: number[] = [];
  refusing = false;
  private held: Array<() => void> | undefined;

  constructor(readonly real: LevelStore) {}

  hold(): void {
    this.held = [];
  }
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const go of held) go();
  }

  asStore(): Store {
    return Object.assign(Object.create(this.real) as Store, {
      batch: async (ops: StoreOp[]) => {
        this.batches.push(ops.length);
        if (this.held) await new Promise<void>((r) => this.held!.push(r));
        if (this.refusing) throw new NemuError(ErrorCodes.STORE, 'NOREPLICAS Not enough good replicas to write.');
        return this.real.batch(ops);
      },
    });
  }
}

function head(): MutationHead {
  return { id: mutationId(), reviewUid: 'u', kind: 'Pod', namespace: 'web', operation: 'CREATE', verbs: ['labels'], time: new Date().toISOString() };
}

const PATCH = '[{"op":"add","path":"/metadata/labels/a","value":"b"}]';
const REVERSE = '[{"op":"remove","path":"/metadata/labels/a"}]';

let dir: string;
let level: LevelStore;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nemu-mutation-log-'));
  level = await LevelStore.open(dir);
});
afterAll(async () => {
  await level.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('the mutation log', () => {
  it('resolves a commit only once its entry is in the store, and commits that arrive together share one write', async () => {
    const faulty = new FaultyStore(level);
    const log = new MutationLog(faulty.asStore(), silentLogger);
    faulty.hold();
    const heads = Array.from({ length: 50 }, head);
    let resolved = 0;
    const commits = heads.map((h) => log.commit(h, PATCH, REVERSE).then(() => resolved++));
    await until('the write to start', () => faulty.batches.length === 1);
    expect(resolved).toBe(0);
    expect(await level.get(`mutations/${heads[0]!.id}`)).toBeUndefined();
    // arriving while the first write runs: the next write takes them all at once
    const late = Array.from({ length: 30 }, head);
    const lateCommits = late.map((h) => log.commit(h, PATCH, REVERSE));
    faulty.release();
    await Promise.all(commits);
    faulty.hold();
    await until('the second write', () => faulty.batches.length === 2);
    faulty.release();
    await Promise.all(lateCommits);
    expect(faulty.batches).toEqual([50, 30]);
    for (const h of [...heads, ...late]) expect(await log.get(h.id)).toMatchObject({ id: h.id, patch: JSON.parse(PATCH), reversePatch: JSON.parse(REVERSE) });
  });

  it('refuses commits while the store refuses writes, says so through its health, and takes them again once a probe write succeeds', async () => {
    const faulty = new FaultyStore(level);
    let failures = 0;
    const log = new MutationLog(faulty.asStore(), silentLogger, { probeEveryMs: 50, onWriteFailure: () => failures++ });
    faulty.refusing = true;
    const refused = await log.commit(head(), PATCH, REVERSE).catch((e: NemuError) => e);
    expect(refused).toMatchObject({ code: ErrorCodes.MUTATION_LOG });
    expect((refused as Error).message).toContain('NOREPLICAS');
    expect(log.health.failing).toBe(true);
    expect(log.health.describe()).toContain('NOREPLICAS');
    // failing: refused at once, without a write
    const writes = faulty.batches.length;
    const h = head();
    await expect(log.commit(h, PATCH, REVERSE)).rejects.toMatchObject({ code: ErrorCodes.MUTATION_LOG });
    expect(await level.get(`mutations/${h.id}`)).toBeUndefined();
    await until('a probe write', () => faulty.batches.length > writes);
    expect(failures).toBeGreaterThanOrEqual(2);
    faulty.refusing = false;
    await until('the log to recover', () => !log.health.failing, 5000);
    const after = head();
    await log.commit(after, PATCH, REVERSE);
    expect(await log.get(after.id)).toMatchObject({ id: after.id });
    log.close();
  });

  it('refuses a commit the store does not confirm within the timeout, and does not write it if its write had not started', async () => {
    const faulty = new FaultyStore(level);
    const log = new MutationLog(faulty.asStore(), silentLogger, { timeoutMs: 100 });
    faulty.hold();
    const first = head();
    const waiting = head();
    const p1 = log.commit(first, PATCH, REVERSE);
    await until('the write to start', () => faulty.batches.length === 1);
    const p2 = log.commit(waiting, PATCH, REVERSE);
    await expect(p1).rejects.toMatchObject({ code: ErrorCodes.MUTATION_LOG });
    await expect(p2).rejects.toMatchObject({ code: ErrorCodes.MUTATION_LOG });
    faulty.release();
    await log.flush();
    // the held write lands late (an entry for a mutation that was not applied); the one that never started is not written
    expect(await log.get(first.id)).toMatchObject({ id: first.id });
    expect(await log.get(waiting.id)).toBeUndefined();
    expect(faulty.batches).toEqual([1]);
    expect(log.health.failing).toBe(false);
  });

  it('writes an entry appended outside admission even while failing, and resolves without throwing when it cannot', async () => {
    const faulty = new FaultyStore(level);
    const log = new MutationLog(faulty.asStore(), silentLogger, { probeEveryMs: 10_000 });
    faulty.refusing = true;
    await log.commit(head(), PATCH, REVERSE).catch(() => undefined);
    expect(log.health.failing).toBe(true);
    const h = head();
    await log.append({ ...h, patch: JSON.parse(PATCH), reversePatch: JSON.parse(REVERSE) });
    expect(await level.get(`mutations/${h.id}`)).toBeUndefined();
    faulty.refusing = false;
    await log.append({ ...h, patch: JSON.parse(PATCH), reversePatch: JSON.parse(REVERSE) });
    expect(await log.get(h.id)).toMatchObject({ id: h.id });
    log.close();
  });
});
