import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { identifyProcess } from './identity.ts';

// A fake /proc: pid 4242 in a pod container's cgroup, started at tick 5000.
const UID = '0d3c1f0e-1111-2222-3333-444455556666';
const ID = 'a'.repeat(64);
let proc: string;

async function fakeProcess(pid: number, startTicks: number, cgroup: string): Promise<void> {
  await mkdir(join(proc, String(pid)), { recursive: true });
  const fields = ['S', ...Array.from({ length: 18 }, () => '0'), String(startTicks), '0'];
  await writeFile(join(proc, String(pid), 'stat'), `${pid} (sh x) ${fields.join(' ')}\n`);
  await writeFile(join(proc, String(pid), 'cgroup'), `0::${cgroup}\n`);
}

beforeAll(async () => {
  proc = await mkdtemp(join(tmpdir(), 'fake-proc-'));
  await fakeProcess(4242, 5000, `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID.replace(/-/g, '_')}.slice/cri-containerd-${ID}.scope`);
  await fakeProcess(77, 100, '/system.slice/sshd.service');
});
afterAll(async () => {
  await rm(proc, { recursive: true, force: true });
});

describe('caller identity from the kernel', () => {
  it('maps the peer pid to its pod UID and container id', async () => {
    const who = await identifyProcess({ pid: 4242, uid: 0 }, 6000, proc);
    expect(who).toMatchObject({ pid: 4242, podUid: UID, containerId: ID, startTicks: 5000 });
  });

  it('refuses a pid whose process started after the connection was accepted (pid reuse)', async () => {
    await expect(identifyProcess({ pid: 4242, uid: 0 }, 4000, proc)).rejects.toMatchObject({
      code: 'NEMU_ERR_SECRETS_NOT_A_POD',
      message: expect.stringContaining('pid was reused'),
    });
  });

  it('refuses processes outside pods, gone processes and pid 0 (another pid namespace)', async () => {
    await expect(identifyProcess({ pid: 77, uid: 0 }, 6000, proc)).rejects.toMatchObject({ code: 'NEMU_ERR_SECRETS_NOT_A_POD' });
    await expect(identifyProcess({ pid: 99999, uid: 0 }, 6000, proc)).rejects.toMatchObject({ code: 'NEMU_ERR_SECRETS_NOT_A_POD' });
    await expect(identifyProcess({ pid: 0, uid: 0 }, 6000, proc)).rejects.toMatchObject({ code: 'NEMU_ERR_SECRETS_NOT_A_POD' });
  });
});
