import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { podOfPid, podOfProcCgroup } from './proc.ts';

const UID = '0f4c8a2e-5b1d-4c3e-9a7f-2d6b8e1c4a90';
const UID_ = UID.replace(/-/g, '_');
const ID = '0123456789abcdef'.repeat(4);

describe('podOfProcCgroup', () => {
  it('reads the v2 line', () => {
    const text = `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope\n`;
    expect(podOfProcCgroup(text)).toMatchObject({ podUid: UID, qos: 'besteffort', containerId: ID, runtime: 'containerd' });
  });

  it('reads v1 lines when the v2 line is not a pod (hybrid host)', () => {
    const text = [
      '12:pids:/kubepods/burstable/pod' + UID + '/' + ID,
      '4:memory:/kubepods/burstable/pod' + UID + '/' + ID,
      '3:cpu,cpuacct:/kubepods/burstable/pod' + UID + '/' + ID,
      '1:name=systemd:/kubepods/burstable/pod' + UID + '/' + ID,
      '0::/',
      '',
    ].join('\n');
    expect(podOfProcCgroup(text)).toMatchObject({ podUid: UID, qos: 'burstable', containerId: ID, cgroupPath: `/kubepods/burstable/pod${UID}/${ID}` });
  });

  it('prefers the cpu hierarchy over one a process could have been moved in alone', () => {
    const other = 'f'.repeat(64);
    const text = [`9:freezer:/kubepods/pod${UID}/${other}`, `3:cpu,cpuacct:/kubepods/pod${UID}/${ID}`].join('\n');
    expect(podOfProcCgroup(text)?.containerId).toBe(ID);
  });

  it('is undefined for a host process and for CRI-O conmon', () => {
    expect(podOfProcCgroup('0::/system.slice/sshd.service\n')).toBeUndefined();
    expect(podOfProcCgroup(`0::/kubepods.slice/kubepods-pod${UID_}.slice/crio-conmon-${ID}.scope\n`)).toBeUndefined();
    expect(podOfProcCgroup('')).toBeUndefined();
    expect(podOfProcCgroup('garbage without colons')).toBeUndefined();
  });
});

describe('podOfPid', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reads <procRoot>/<pid>/cgroup', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemu-proc-'));
    await mkdir(join(dir, '4242'));
    await writeFile(join(dir, '4242', 'cgroup'), `0::/kubepods/pod${UID}/crio-${ID}\n`);
    expect(await podOfPid(4242, dir)).toEqual({
      podUid: UID,
      qos: 'guaranteed',
      containerId: ID,
      runtime: 'crio',
      cgroupPath: `/kubepods/pod${UID}/crio-${ID}`,
    });
  });

  it('is undefined for a pid that does not exist', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nemu-proc-'));
    expect(await podOfPid(4242, dir)).toBeUndefined();
  });

  it('says this test process runs outside any pod (real /proc)', async () => {
    expect(await podOfPid(process.pid)).toBeUndefined();
  });
});
