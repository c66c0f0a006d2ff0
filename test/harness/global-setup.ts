// Once per `vitest run`: the shared real services every test file can reach through
// `inject('redisUrl')` / `inject('prometheusUrl')`. Tests that need a private or
// backfilled server start their own with startRedis() / startPrometheus().
import type { TestProject } from 'vitest/node';

import { cgroupV2Root, removeSharedLevels, sharedLevelsPresent } from './cgroup.ts';
import { type PrometheusServer, startPrometheus } from './prometheus.ts';
import { type RedisServer, startRedis } from './redis.ts';
import { findTool, requireTool } from './tools.ts';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Name every missing tool at once, each with its apt-get command.
  const missing: string[] = [];
  for (const [tool, pkg] of [
    ['redis-server', 'redis-server'],
    ['prometheus', 'prometheus'],
  ] as const) {
    try {
      requireTool(tool, pkg);
    } catch (err) {
      missing.push((err as Error).message);
    }
  }
  if (missing.length > 0) throw new Error(missing.join('\n'));

  const native = await import('./build-native.ts');
  await native.buildNative(); // peercred addon (secrets socket)
  await native.prebuildGo(findTool('go') !== undefined); // Go fixtures and the launcher, with a cold cache too
  const cgroupRoot = safeCgroupRoot();
  const cgroupsBefore = cgroupRoot === undefined ? new Set<string>() : await sharedLevelsPresent(cgroupRoot);

  const [redis, prometheus] = await Promise.allSettled([startRedis(), startPrometheus()]);
  if (redis.status === 'rejected' || prometheus.status === 'rejected') {
    await Promise.all([stopIfStarted(redis), stopIfStarted(prometheus)]);
    throw redis.status === 'rejected' ? redis.reason : (prometheus as PromiseRejectedResult).reason;
  }
  project.provide('redisUrl', redis.value.url);
  project.provide('prometheusUrl', prometheus.value.url);

  return async () => {
    await Promise.all([redis.value.stop(), prometheus.value.stop()]);
    if (cgroupRoot !== undefined) await removeSharedLevels(cgroupRoot, cgroupsBefore);
  };
}

/** cgroup tests fail on their own, with the reason, when there is no cgroup v2 here. */
function safeCgroupRoot(): string | undefined {
  try {
    return cgroupV2Root();
  } catch {
    return undefined;
  }
}

async function stopIfStarted(result: PromiseSettledResult<RedisServer | PrometheusServer>): Promise<void> {
  if (result.status === 'fulfilled') await result.value.stop();
}
