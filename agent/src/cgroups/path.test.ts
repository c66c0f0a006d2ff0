import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { parseCgroupPath } from './path.ts';

const UID = '0f4c8a2e-5b1d-4c3e-9a7f-2d6b8e1c4a90';
const UID_ = UID.replace(/-/g, '_');
const ID = 'a'.repeat(8) + '0123456789abcdef'.repeat(3) + 'b'.repeat(8);
const STATIC_UID = '3a1d1f5f2b1e1e7c2e1f6b3e7e4f5c6d';

describe('parseCgroupPath', () => {
  const table: Array<[string, string, ReturnType<typeof parseCgroupPath>]> = [
    [
      'systemd, burstable, containerd',
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { podUid: UID, qos: 'burstable', containerId: ID, runtime: 'containerd' },
    ],
    [
      'systemd, besteffort, crio',
      `kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${ID}.scope`,
      { podUid: UID, qos: 'besteffort', containerId: ID, runtime: 'crio' },
    ],
    [
      'systemd, guaranteed, docker',
      `/kubepods.slice/kubepods-pod${UID_}.slice/docker-${ID}.scope`,
      { podUid: UID, qos: 'guaranteed', containerId: ID, runtime: 'docker' },
    ],
    ['cgroupfs, burstable, containerd', `/kubepods/burstable/pod${UID}/${ID}`, { podUid: UID, qos: 'burstable', containerId: ID, runtime: 'containerd' }],
    ['cgroupfs, besteffort, crio', `/kubepods/besteffort/pod${UID}/crio-${ID}`, { podUid: UID, qos: 'besteffort', containerId: ID, runtime: 'crio' }],
    ['cgroupfs, guaranteed', `/kubepods/pod${UID}/${ID}`, { podUid: UID, qos: 'guaranteed', containerId: ID, runtime: 'containerd' }],
    [
      'kind: kubelet cgroup root below kubelet.slice',
      `/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { podUid: UID, qos: 'besteffort', containerId: ID, runtime: 'containerd' },
    ],
    [
      'seen from inside a cgroup namespace',
      `/../../kubepods-burstable-pod${UID_}.slice/cri-containerd-${ID}.scope`,
      { podUid: UID, qos: 'burstable', containerId: ID, runtime: 'containerd' },
    ],
    [
      'a sub-cgroup a container made for itself',
      `/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope/init.scope`,
      { podUid: UID, qos: 'guaranteed', containerId: ID, runtime: 'containerd' },
    ],
    [
      'static pod (32-hex UID)',
      `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${STATIC_UID}.slice/cri-containerd-${ID}.scope`,
      {
        podUid: STATIC_UID,
        qos: 'burstable',
        containerId: ID,
        runtime: 'containerd',
      },
    ],
    ['the pod level itself', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice`, { podUid: UID, qos: 'burstable' }],
    // Not a pod's container: nothing of the workload runs there.
    ['CRI-O conmon', `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-conmon-${ID}.scope`, undefined],
    ['unknown child of a pod', `/kubepods.slice/kubepods-pod${UID_}.slice/something-else`, undefined],
    ['short container id', `/kubepods/pod${UID}/abc123`, undefined],
    ['uppercase container id', `/kubepods/pod${UID}/${ID.toUpperCase()}`, undefined],
    ['kubepods QoS level only', '/kubepods.slice/kubepods-burstable.slice', undefined],
    ['a system service', '/system.slice/containerd.service', undefined],
    ['root', '/', undefined],
    ['empty', '', undefined],
    ['pod segment without kubepods parent (cgroupfs)', `/pod${UID}/${ID}`, undefined],
    ['malformed uid', `/kubepods.slice/kubepods-podnot_a_uid.slice/cri-containerd-${ID}.scope`, undefined],
    ['truncated uid', `/kubepods/burstable/pod${UID.slice(0, 30)}/${ID}`, undefined],
    ['slice suffix missing', `/kubepods.slice/kubepods-pod${UID_}/cri-containerd-${ID}.scope`, undefined],
  ];

  it.each(table)('%s', (_name, path, expected) => {
    expect(parseCgroupPath(path)).toEqual(expected);
  });

  it('gives the UID back with dashes whatever the driver wrote', () => {
    const systemd = parseCgroupPath(`/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${ID}.scope`);
    const cgroupfs = parseCgroupPath(`/kubepods/pod${UID}/${ID}`);
    expect(systemd?.podUid).toBe(UID);
    expect(cgroupfs?.podUid).toBe(UID);
  });

  it('never throws on arbitrary input', () => {
    for (const junk of ['//////', '\0', 'kubepods.slice/'.repeat(1000), `pod${'_'.repeat(5000)}`, '-'.repeat(10_000) + 'kubepods']) {
      expect(() => parseCgroupPath(junk)).not.toThrow();
    }
  });

  it('reads back every pod and container kubelet and the runtimes can name (property)', () => {
    const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
    fc.assert(
      fc.property(
        fc.uuid(),
        hex(64),
        fc.constantFrom('guaranteed', 'burstable', 'besteffort'),
        fc.constantFrom('systemd', 'cgroupfs'),
        fc.constantFrom('containerd', 'crio', 'docker'),
        (uid, id, qos, driver, runtime) => {
          let path: string;
          if (driver === 'systemd') {
            const scope = { containerd: `cri-containerd-${id}.scope`, crio: `crio-${id}.scope`, docker: `docker-${id}.scope` }[runtime];
            const u = uid.replace(/-/g, '_');
            path =
              qos === 'guaranteed'
                ? `/kubepods.slice/kubepods-pod${u}.slice/${scope}`
                : `/kubepods.slice/kubepods-${qos}.slice/kubepods-${qos}-pod${u}.slice/${scope}`;
          } else {
            // cgroupfs: containerd and docker both use the bare id; the path cannot tell them apart.
            const dir = runtime === 'crio' ? `crio-${id}` : id;
            path = qos === 'guaranteed' ? `/kubepods/pod${uid}/${dir}` : `/kubepods/${qos}/pod${uid}/${dir}`;
          }
          const expectedRuntime = driver === 'cgroupfs' && runtime === 'docker' ? 'containerd' : runtime;
          expect(parseCgroupPath(path)).toEqual({ podUid: uid, qos, containerId: id, runtime: expectedRuntime });
        },
      ),
    );
  });
});
