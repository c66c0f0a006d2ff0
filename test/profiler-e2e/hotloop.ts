// The hotloop Go fixture started in a pod-shaped cgroup, for profiler tests and benchmarks.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { createPodCgroup, type PodCgroup, spawnInCgroup } from '../harness/cgroup.ts';

export const HOTLOOP = new URL('../fixtures/go/hotloop', import.meta.url).pathname;

/** The source line of main.inlinedAdd's body, where its inlined frame points. */
export function inlinedAddLine(): number {
  const lines = readFileSync(join(HOTLOOP, 'main.go'), 'utf8').split('\n');
  const at = lines.findIndex((l) => l.startsWith('func inlinedAdd('));
  if (at < 0) throw new Error(`no func inlinedAdd in ${HOTLOOP}/main.go`);
  return at + 2; // 1-based, the line after the signature
}

export interface RunningHotloop {
  cg: PodCgroup;
  child: ChildProcess;
  pid: number;
  /** SIGTERM; resolves with the program's last line (iterations=… throughput=…). */
  stop(): Promise<string>;
}

export async function startHotloop(binary: string, opts: { podUid?: string; seconds?: number } = {}): Promise<RunningHotloop> {
  const cg = await createPodCgroup(opts.podUid ? { podUid: opts.podUid } : {});
  const child = spawnInCgroup(cg, binary, ['-seconds', String(opts.seconds ?? 120)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  while (!/pid=\d+/.test(out)) await once(child.stdout!, 'data');
  const pid = Number(/pid=(\d+)/.exec(out)![1]);
  return {
    cg,
    child,
    pid,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await once(child, 'close');
      }
      await cg.cleanup();
      return out.trim().split('\n').at(-1) ?? '';
    },
  };
}
