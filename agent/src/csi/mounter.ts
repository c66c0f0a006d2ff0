/**
 * Bind mounts with util-linux mount(8) and umount(8), spawned with argument arrays (never a
 * shell). Node has no mount(2); the tools are in every Debian image (package `mount`), and a
 * failure comes back with their own stderr, which names the cause.
 */
import { execFile } from 'node:child_process';

export interface Mounter {
  /** Bind-mounts `source` onto `target` (read-write: a bind ignores `ro` on its first call). */
  bind(source: string, target: string): Promise<void>;
  /** Makes the bind mount on `target` read-only (a second, remount call, as mount(8) says). */
  remountReadOnly(target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

export class MountError extends Error {
  constructor(
    readonly command: string,
    message: string,
  ) {
    super(message);
    this.name = 'MountError';
  }
}

function run(file: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      const why =
        e.code === 'ENOENT'
          ? `${file} is not installed (Debian package "mount")`
          : e.killed
            ? `timed out after ${timeoutMs} ms`
            : String(stderr).trim() || e.message;
      reject(new MountError(`${file} ${args.join(' ')}`, `${file} ${args.join(' ')}: ${why}`));
    });
  });
}

/**
 * `-n`: do not write /etc/mtab or libmount's utab (the agent's root filesystem is read-only,
 * and the kernel's mountinfo is the only record this driver reads). `--make-private` is not
 * used: kubelet's pods directory is a shared mount so the bind propagates to the host.
 */
export function utilLinuxMounter(opts: { mount?: string; umount?: string; timeoutMs?: number } = {}): Mounter {
  const mount = opts.mount ?? 'mount';
  const umount = opts.umount ?? 'umount';
  const timeoutMs = opts.timeoutMs ?? 10_000;
  return {
    async bind(source, target) {
      await run(mount, ['-n', '--bind', '--', source, target], timeoutMs);
    },
    async remountReadOnly(target) {
      await run(mount, ['-n', '-o', 'remount,bind,ro', '--', target], timeoutMs);
    },
    async unmount(target) {
      await run(umount, ['-n', '--', target], timeoutMs);
    },
  };
}
