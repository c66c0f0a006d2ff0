/**
 * The kernel's half of a caller's identity: SO_PEERCRED pid → /proc/<pid>/cgroup → pod UID
 * and container id. A pid can be reused once its process exits, so the process start time
 * (/proc/<pid>/stat field 22) is read around the cgroup read and must (a) not change, and
 * (b) not be later than the moment the connection was accepted — a process that started
 * after the connect() cannot be the one that connected.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { podOfPid } from '../cgroups/proc.ts';
import { secretsError } from './errors.ts';

export interface CallerProcess {
  pid: number;
  uid: number;
  podUid: string;
  containerId: string;
  cgroupPath: string;
  /** Process start, in clock ticks since boot: a fingerprint against pid reuse. */
  startTicks: number;
}

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

export async function processStartTicks(pid: number, procRoot: string): Promise<number | undefined> {
  try {
    const stat = await readFile(join(procRoot, String(pid), 'stat'), 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** Time since boot, in clock ticks, now (read when a connection is accepted). */
export function uptimeTicksSync(procRoot: string): number {
  try {
    return Math.ceil(Number(readFileSync(join(procRoot, 'uptime'), 'utf8').split(' ')[0]) * ticksPerSecond());
  } catch {
    return Number.MAX_SAFE_INTEGER;
  }
}

export async function identifyProcess(peer: { pid: number; uid: number }, acceptedAtTicks: number, procRoot: string): Promise<CallerProcess> {
  if (!peer.pid) throw secretsError('NOT_A_POD', 'the caller is in another pid namespace the agent cannot see; run the agent with hostPID');
  const before = await processStartTicks(peer.pid, procRoot);
  const pod = await podOfPid(peer.pid, procRoot).catch(() => undefined);
  const after = await processStartTicks(peer.pid, procRoot);
  if (before === undefined || after === undefined || before !== after) {
    throw secretsError('NOT_A_POD', `the calling process ${peer.pid} exited while it was being identified`);
  }
  // +1 tick: /proc/uptime and the start time are rounded differently.
  if (before > acceptedAtTicks + 1) {
    throw secretsError('NOT_A_POD', `process ${peer.pid} started after the connection was made: its pid was reused`);
  }
  if (!pod?.containerId) {
    throw secretsError('NOT_A_POD', `process ${peer.pid} is not in a pod container's cgroup; only pods of this node may use the secrets socket`);
  }
  return { pid: peer.pid, uid: peer.uid, podUid: pod.podUid, containerId: pod.containerId, cgroupPath: pod.cgroupPath, startTicks: before };
}

/**
 * The same process still holds the pid (checked on every request of a kept-alive
 * connection). A synchronous read: procfs answers from memory, and the async path costs
 * four thread-pool round trips per request.
 */
export function stillSameProcess(caller: CallerProcess, procRoot: string): boolean {
  try {
    const stat = readFileSync(join(procRoot, String(caller.pid), 'stat'), 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ', 21)[19]) === caller.startTicks;
  } catch {
    return false;
  }
}
