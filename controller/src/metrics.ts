/**
 * The controller's Prometheus metrics, on its own registry (several controllers can live in
 * one test process). Other parts register their metrics here through `registry`.
 */
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

export interface ControllerMetrics {
  registry: Registry;
  reviews: Counter<'kind' | 'operation' | 'result'>;
  reviewSeconds: Histogram<'kind'>;
  mutatorErrors: Counter<'mutator'>;
  memo: Counter<'result'>;
  dictionaryRoundTrips: Counter<'backend' | 'result'>;
  dictionarySeconds: Histogram<'backend'>;
  mutationLogWriteFailures: Counter;
}

export function createControllerMetrics(defaults = true): ControllerMetrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'nemutator_controller_' });
  return {
    registry,
    reviews: new Counter({
      name: 'nemutator_admission_reviews_total',
      help: 'AdmissionReviews answered, by object kind, operation and result (mutated, unchanged, skipped, dry_run, degraded, refused, invalid).',
      labelNames: ['kind', 'operation', 'result'],
      registers: [registry],
    }),
    reviewSeconds: new Histogram({
      name: 'nemutator_admission_review_duration_seconds',
      help: 'Time to answer an AdmissionReview, from the last byte of the body to the answer.',
      labelNames: ['kind'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    mutatorErrors: new Counter({
      name: 'nemutator_mutator_errors_total',
      help: 'Mutators that failed and were skipped (the object was admitted without their change).',
      labelNames: ['mutator'],
      registers: [registry],
    }),
    memo: new Counter({
      name: 'nemutator_admission_memo_total',
      help: 'Reviews of objects the chain may have answered before: hit (the answer was reused), stale (remembered, but a dictionary value or a recommendation had changed) or miss.',
      labelNames: ['result'],
      registers: [registry],
    }),
    dictionaryRoundTrips: new Counter({
      name: 'nemutator_dictionary_round_trips_total',
      help: 'Dictionary lookups that went to the backend (cache hits are not round trips), by backend and result (ok, error).',
      labelNames: ['backend', 'result'],
      registers: [registry],
    }),
    dictionarySeconds: new Histogram({
      name: 'nemutator_dictionary_round_trip_duration_seconds',
      help: 'Time of one dictionary round trip (all keys of a review at once).',
      labelNames: ['backend'],
      buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.2, 0.5],
      registers: [registry],
    }),
    mutationLogWriteFailures: new Counter({
      name: 'nemutator_mutation_log_write_failures_total',
      help: 'Writes to the mutation log that failed (group commits and, while failing, probes). While it grows, reviews are admitted unmutated and /readyz answers 503.',
      registers: [registry],
    }),
  };
}
