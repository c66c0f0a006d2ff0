/** Chooses the dictionary backend from the configuration: `auto` = Redis when redisUrl or redisSentinels is set, else the embedded store. */
import { ErrorCodes, NemuError } from '#common/errors.js';
import type { Logger } from '#common/log.js';

import type { ControllerConfig } from '../config.ts';
import type { ControllerMetrics } from '../metrics.ts';
import { type RedisConfig, redisTargetOf } from '../redis/target.ts';
import type { Store } from '../store/store.ts';
import type { Dictionary } from './dictionary.ts';
import { EmbeddedDictionary } from './embedded.ts';
import { RedisDictionary } from './redis.ts';

export async function openDictionary(
  config: Pick<ControllerConfig, 'dictionary' | 'redisKeyPrefix' | 'dictionaryTimeout' | 'dictionaryCacheTtl'> & RedisConfig,
  store: Store,
  log: Logger,
  metrics?: ControllerMetrics,
): Promise<Dictionary> {
  const target = redisTargetOf(config);
  const useRedis = config.dictionary === 'redis' || (config.dictionary === 'auto' && target !== undefined);
  if (!useRedis) return new EmbeddedDictionary(store);
  if (!target)
    throw new NemuError(
      ErrorCodes.CONFIG,
      'dictionary is "redis" but neither redisUrl nor redisSentinels is set; set NEMUTATOR_REDIS_URL (e.g. redis://redis.nemutator.svc:6379/0), or NEMUTATOR_REDIS_SENTINELS with NEMUTATOR_REDIS_MASTER_NAME, or use --dictionary embedded',
    );
  const dict = new RedisDictionary({
    target,
    keyPrefix: config.redisKeyPrefix,
    timeoutMs: config.dictionaryTimeout,
    cacheTtlMs: config.dictionaryCacheTtl,
    log: log.child({ component: 'dictionary' }),
    ...(metrics ? { metrics } : {}),
  });
  // Never fail start-up on Redis: reviews admit unchanged until it answers.
  await dict.ready(2000);
  return dict;
}
