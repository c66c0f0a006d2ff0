/** Chooses the dictionary backend from the configuration: `auto` = Redis when redisUrl is set, else the embedded store. */
import { ErrorCodes, NemuError } from '../../../common/src/errors.ts';
import type { Logger } from '../../../common/src/log.ts';
import type { ControllerConfig } from '../config.ts';
import type { ControllerMetrics } from '../metrics.ts';
import type { Store } from '../store/store.ts';
import type { Dictionary } from './dictionary.ts';
import { EmbeddedDictionary } from './embedded.ts';
import { RedisDictionary } from './redis.ts';

export async function openDictionary(
  config: Pick<ControllerConfig, 'dictionary' | 'redisUrl' | 'redisKeyPrefix' | 'dictionaryTimeout' | 'dictionaryCacheTtl'>,
  store: Store,
  log: Logger,
  metrics?: ControllerMetrics,
): Promise<Dictionary> {
  const useRedis = config.dictionary === 'redis' || (config.dictionary === 'auto' && config.redisUrl !== '');
  if (!useRedis) return new EmbeddedDictionary(store);
  if (!config.redisUrl) throw new NemuError(ErrorCodes.CONFIG, 'dictionary is "redis" but redisUrl is empty; set NEMUTATOR_REDIS_URL (e.g. redis://redis.nemutator.svc:6379/0) or use --dictionary embedded');
  const dict = new RedisDictionary({ url: config.redisUrl, keyPrefix: config.redisKeyPrefix, timeoutMs: config.dictionaryTimeout, cacheTtlMs: config.dictionaryCacheTtl, log: log.child({ component: 'dictionary' }), ...(metrics ? { metrics } : {}) });
  // Never fail start-up on Redis: reviews admit unchanged until it answers.
  await dict.ready(2000);
  return dict;
}
