/**
 * The agent's `profile` command: a ProfileRequest from the controller becomes one capture,
 * queued behind any capture already running on this node, and answered as a ProfileResult
 * (frames deduplicated, samples leaf first).
 */
import type { ICommand, ICommandResult } from '../../../proto/codec.ts';
import { NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import type { CgroupVersionOption } from '../cgroups/hierarchy.ts';
import { checkLimits } from './bpftrace.ts';
import { capture, type CaptureResult } from './capture.ts';
import { CaptureQueue } from './queue.ts';
import { BinaryCache } from './symbolize.ts';
import type { ContainerNames } from './target.ts';

export interface ProfileHandlerOptions {
  bpftracePath: string;
  cgroupRoot: string;
  cgroupVersion?: CgroupVersionOption;
  procRoot: string;
  log: Logger;
  names?: ContainerNames;
  queue?: CaptureQueue;
  /** Aborts running captures (the agent is stopping). */
  signal?: AbortSignal;
}

type Result = Omit<ICommandResult, 'requestId'>;

export function toWire(r: CaptureResult): NonNullable<ICommandResult['profile']> {
  return {
    frames: r.frames,
    samples: r.samples,
    processes: r.processes,
    hz: r.hz,
    startedUnixMs: r.startedUnixMs,
    durationMs: r.durationMs,
    warnings: r.warnings,
  };
}

export function createProfileHandler(opts: ProfileHandlerOptions): (command: ICommand) => Promise<Result> {
  const queue = opts.queue ?? new CaptureQueue();
  const cache = new BinaryCache();
  return async (command) => {
    const req = command.profile;
    if (!req) throw new NemuError('NEMU_ERR_BAD_REQUEST', 'profile command without a ProfileRequest', { status: 400 });
    const seconds = req.seconds ?? 0;
    const hz = req.hz ?? 0;
    checkLimits(seconds, hz);
    const target = req.pid ? { pid: req.pid } : { podUid: req.podUid ?? '', container: req.container ?? '' };
    if (!('pid' in target) && target.podUid === '') throw new NemuError('NEMU_ERR_BAD_REQUEST', 'profile request names neither a pod uid nor a pid', { status: 400 });
    const log = opts.log.child({ profile: req.profileId, pod: req.pod ? `${req.namespace}/${req.pod}` : undefined, pid: req.pid || undefined });
    const result = await queue.run(
      async () => {
        log.info({ seconds, hz, container: req.container || undefined }, 'capture starting');
        const r = await capture(
          { target, seconds, hz },
          {
            bpftracePath: opts.bpftracePath,
            cgroupRoot: opts.cgroupRoot,
            procRoot: opts.procRoot,
            cache,
            ...(opts.cgroupVersion ? { cgroupVersion: opts.cgroupVersion } : {}),
            ...(opts.names ? { names: opts.names } : {}),
            ...(opts.signal ? { signal: opts.signal } : {}),
          },
        );
        log.info({ samples: r.samples.reduce((a, s) => a + s.count, 0), frames: r.frames.length, processes: r.processes.length, symbolizeMs: r.symbolizeMs }, 'capture done');
        return r;
      },
      (ahead) => log.info({ ahead }, 'capture queued behind others on this node'),
    );
    return { profile: toWire(result) };
  };
}
