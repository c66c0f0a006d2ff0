// Where one review's CPU goes, phase by phase, in this process and without HTTP: the same
// functions the handler calls, on the bench's Pods, timed over many reviews. It explains
// the throughput row; it is not a target.
import { applies, diff } from '#controller/admission/patch.js';
import { decodeAdmissionReview } from '#controller/admission/review.js';
import { chainKeys, DEFAULT_CHAIN, runChain } from '#controller/mutators/chain.js';
import { RatioSource } from '#controller/mutators/resources.js';

export interface PhaseCosts {
  reviews: number;
  /** Microseconds per review, by phase. */
  us: Record<'decode' | 'keys' | 'chain' | 'diff' | 'verify' | 'encode', number>;
  ops: number;
}

export function measurePhases(
  bodies: readonly string[],
  dictionary: Record<string, string>,
  ratio: { cpu: number; memory: number },
  reviews = 20_000,
): PhaseCosts {
  const buffers = bodies.map((b) => Buffer.from(b));
  const ctx = {
    kind: 'Pod' as const,
    operation: 'CREATE' as const,
    namespace: 'shop',
    dictionary: new Map(Object.entries(dictionary)),
    recommendations: [new RatioSource(ratio)],
  };
  const us = { decode: 0, keys: 0, chain: 0, diff: 0, verify: 0, encode: 0 };
  let ops = 0;
  // The first pass warms the JIT; the second is the one reported.
  for (let pass = 0; pass < 2; pass++) {
    for (const k of Object.keys(us) as Array<keyof typeof us>) us[k] = 0;
    for (let i = 0; i < reviews; i++) {
      let a = performance.now();
      const req = decodeAdmissionReview(buffers[i % buffers.length]!);
      let b = performance.now();
      us.decode += b - a;
      a = b;
      chainKeys(DEFAULT_CHAIN, req.object!, ctx);
      b = performance.now();
      us.keys += b - a;
      a = b;
      const result = runChain(DEFAULT_CHAIN, req.object!, ctx);
      b = performance.now();
      us.chain += b - a;
      a = b;
      const { forward, reverse } = diff(req.object!, result.object);
      b = performance.now();
      us.diff += b - a;
      a = b;
      if (!applies(req.object!, forward, result.object)) throw new Error('the bench patch does not apply');
      b = performance.now();
      us.verify += b - a;
      a = b;
      // the answer's patch, and the mutation log entry around it
      const patchJson = JSON.stringify(forward);
      Buffer.from(patchJson).toString('base64');
      JSON.stringify({ reversePatch: reverse }).slice(0, -1).concat(',"patch":', patchJson, '}');
      b = performance.now();
      us.encode += b - a;
      ops = forward.length;
    }
  }
  for (const k of Object.keys(us) as Array<keyof typeof us>) us[k] = (us[k] * 1000) / reviews;
  return { reviews, us, ops };
}
