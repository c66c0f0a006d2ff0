/**
 * The agent's `profile` command: a ProfileRequest from the controller becomes one capture,
 * queued behind any capture already running on this node, and answered as a ProfileResult
 * (frames deduplicated, samples leaf first).
 */
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';
import { type ICommand, type ICommandResult, pb } from '#proto/codec.js';

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

/** Room left in a 4 MiB fleet-link frame for the envelope around the profile. */
export const MAX_PROFILE_BYTES = 4 * 1024 * 1024 - 64 * 1024;

/**
 * Keeps the answer within one fleet-link frame: frames are already deduplicated, so only a
 * capture with very many distinct stacks gets here; the lightest samples go first, and the
 * profile says how much was dropped.
 */
export function fitFrame(result: NonNullable<ICommandResult['profile']>, maxBytes = MAX_PROFILE_BYTES): NonNullable<ICommandResult['profile']> {
  const size = (r: typeof result) => pb.ProfileResult.encode(r).finish().length;
  if (size(result) <= maxBytes) return result;
  const samples = [...(result.samples ?? [])].sort((a, b) => Number(b.count ?? 0) - Number(a.count ?? 0));
  const total = samples.reduce((a, s) => a + Number(s.count ?? 0), 0);
  let keep = samples.length;
  let fitted = result;
  while (keep > 0) {
    keep = Math.floor(keep * 0.8);
    const kept = samples.slice(0, keep);
    const used = new Set(kept.flatMap((s) => s.frames ?? []));
    // Re-index the frames still used.
    const index = new Map<number, number>();
    const frames = (result.frames ?? []).filter((_, i) => used.has(i) && index.set(i, index.size));
    const dropped = total - kept.reduce((a, s) => a + Number(s.count ?? 0), 0);
    fitted = {
      ...result,
      frames,
      samples: kept.map((s) => ({ ...s, frames: (s.frames ?? []).map((i) => index.get(i)!) })),
      warnings: [
        ...(result.warnings ?? []),
        `the profile had too many distinct stacks for one fleet-link frame: the ${samples.length - keep} lightest stacks (${dropped} of ${total} samples) were left out; use a lower hz`,
      ],
    };
    if (size(fitted) <= maxBytes) return fitted;
  }
  return fitted;
}

export function createProfileHandler(opts: ProfileHandlerOptions): (command: ICommand) => Promise<Result> {
  const queue = opts.queue ?? new CaptureQueue();
  const cache = new BinaryCache();
  return async (command) => {
    const req = command.profile;
    if (!req) throw new NemuError(ErrorCodes.BAD_REQUEST, 'profile command without a ProfileRequest', { status: 400 });
    const seconds = req.seconds ?? 0;
    const hz = req.hz ?? 0;
    checkLimits(seconds, hz);
    const target = req.pid ? { pid: req.pid } : { podUid: req.podUid ?? '', container: req.container ?? '' };
    if (!('pid' in target) && target.podUid === '')
      throw new NemuError(ErrorCodes.BAD_REQUEST, 'profile request names neither a pod uid nor a pid', { status: 400 });
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
        log.info(
          { samples: r.samples.reduce((a, s) => a + s.count, 0), frames: r.frames.length, processes: r.processes.length, symbolizeMs: r.symbolizeMs },
          'capture done',
        );
        return r;
      },
      (ahead) => log.info({ ahead }, 'capture queued behind others on this node'),
    );
    return { profile: fitFrame(toWire(result)) };
  };
}
