/**
 * AdmissionReview (admission.k8s.io/v1) decoding and answering. Decoding never throws
 * anything but a NemuError with status 400 and a message that says what is wrong.
 */
import { ErrorCodes, NemuError } from '#common/errors.js';

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  resource?: { group: string; version: string; resource: string };
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo?: { username?: string; uid?: string; groups?: string[] };
  object?: Record<string, unknown> | null;
  oldObject?: Record<string, unknown> | null;
  dryRun?: boolean;
}

export interface AdmissionResponse {
  uid: string;
  /** false only for a pod that asked to be refused rather than started without its secrets. */
  allowed: boolean;
  /** Why it was refused (metav1.Status), shown to whoever created the object. */
  status?: { code: number; reason: string; message: string };
  patchType?: 'JSONPatch';
  /** base64 of the JSON Patch */
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReviewOut {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

export function decodeAdmissionReview(body: Buffer): AdmissionRequest {
  let doc: unknown;
  if (body.length === 0) throw bad('the body is empty; send an admission.k8s.io/v1 AdmissionReview');
  try {
    doc = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw bad(`the body is not JSON (${(e as Error).message}); send an admission.k8s.io/v1 AdmissionReview`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('the body is not an AdmissionReview: expected a JSON object');
  const review = doc as Record<string, unknown>;
  if (review.kind !== 'AdmissionReview') throw bad(`the body is not an AdmissionReview: kind is ${JSON.stringify(review.kind)}`);
  if (review.apiVersion !== 'admission.k8s.io/v1') {
    throw bad(`AdmissionReview apiVersion ${JSON.stringify(review.apiVersion)} is not supported; configure admissionReviewVersions: [v1]`);
  }
  const req = review.request;
  if (typeof req !== 'object' || req === null || Array.isArray(req)) throw bad('the AdmissionReview has no request');
  const r = req as Record<string, unknown>;
  if (typeof r.uid !== 'string' || r.uid === '') throw bad('the AdmissionReview request has no uid');
  const kind = r.kind as AdmissionRequest['kind'] | undefined;
  if (typeof kind !== 'object' || kind === null || typeof kind.kind !== 'string') throw bad('the AdmissionReview request has no kind');
  if (typeof r.operation !== 'string') throw bad('the AdmissionReview request has no operation');
  return r as unknown as AdmissionRequest;
}

function bad(message: string): NemuError {
  return new NemuError(ErrorCodes.BAD_REQUEST, message, { status: 400 });
}

export function admissionResponse(response: AdmissionResponse): AdmissionReviewOut {
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response };
}
