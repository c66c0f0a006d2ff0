// Values the global setup provides to every test file: `inject('redisUrl')`.
import 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** redis://127.0.0.1:<port> of the run's shared redis-server. */
    redisUrl: string;
    /** http://127.0.0.1:<port> of the run's shared Prometheus (empty, no backfill). */
    prometheusUrl: string;
  }
}
