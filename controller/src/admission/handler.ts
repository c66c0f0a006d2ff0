/**
 * The webhook's entry point: bytes in, AdmissionReview out. It always admits; what the
 * mutators would change comes back as a JSONPatch.
 */
import type { Logger } from '../../../common/src/log.ts';
import { admissionResponse, decodeAdmissionReview, type AdmissionRequest, type AdmissionReviewOut } from './review.ts';

export interface AdmissionHandler {
  /** Throws NemuError (400) only for bodies that are not a usable AdmissionReview. */
  review(body: Buffer): Promise<AdmissionReviewOut>;
}

export type Admit = (req: AdmissionRequest) => Promise<AdmissionReviewOut>;

/** Admits everything unchanged: the start of the chain before any mutator is configured. */
export function passThroughHandler(log: Logger): AdmissionHandler {
  return {
    async review(body) {
      const req = decodeAdmissionReview(body);
      log.debug({ uid: req.uid, kind: req.kind.kind, operation: req.operation }, 'admission review');
      return admissionResponse({ uid: req.uid, allowed: true });
    },
  };
}
