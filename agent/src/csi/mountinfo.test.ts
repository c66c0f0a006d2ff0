import { describe, expect, it } from 'vitest';

import { locate, mountsAt, parseMountInfo, unescapeMountPath } from './mountinfo.ts';

// Lines in the shape proc(5) documents, with optional fields, escapes and a bind of a subdirectory.
const TEXT = [
  '22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w',
  '30 22 0:25 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,size=1000k,mode=755',
  '31 22 0:26 / /var/lib/kubelet rw,relatime shared:6 master:2 - ext4 /dev/sda1 rw',
  '40 31 0:25 /nemutator /var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/sock/mount ro,nosuid,nodev,relatime shared:5 - tmpfs tmpfs rw,size=1000k,mode=755',
  '41 31 0:26 /dir\\040with\\040space /var/lib/kubelet/a\\011tab\\134back ro - ext4 /dev/sda1 rw',
  'garbage line',
  '',
].join('\n');

describe('mountinfo', () => {
  it('parses every documented field and skips lines of another shape', () => {
    const entries = parseMountInfo(TEXT);
    expect(entries).toHaveLength(5);
    expect(entries[3]).toEqual({
      id: 40,
      parentId: 31,
      device: '0:25',
      root: '/nemutator',
      mountPoint: '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/sock/mount',
      options: ['ro', 'nosuid', 'nodev', 'relatime'],
      fsType: 'tmpfs',
      source: 'tmpfs',
    });
  });

  it("undoes the kernel's octal escapes in paths", () => {
    const e = parseMountInfo(TEXT)[4]!;
    expect([e.root, e.mountPoint]).toEqual(['/dir with space', '/var/lib/kubelet/a\ttab\\back']);
    expect(unescapeMountPath('a\\012b')).toBe('a\nb');
    expect(mountsAt(parseMountInfo(TEXT), '/var/lib/kubelet/a\ttab\\back')).toHaveLength(1);
  });

  it('locates the filesystem and directory a path names, so a bind of it can be recognised', () => {
    const entries = parseMountInfo(TEXT);
    expect(locate(entries, '/run/nemutator')).toEqual({ device: '0:25', root: '/nemutator' });
    expect(locate(entries, '/var/lib/kubelet/pods')).toEqual({ device: '0:26', root: '/pods' });
    expect(locate(entries, '/runaway')).toEqual({ device: '0:21', root: '/runaway' });
    // The published target is a bind of /run/nemutator: same device, same root.
    const target = mountsAt(entries, '/var/lib/kubelet/pods/uid-1/volumes/kubernetes.io~csi/sock/mount')[0]!;
    expect([target.device, target.root]).toEqual(['0:25', '/nemutator']);
  });
});
