// metav1.Status errors, shaped and worded like kube-apiserver's (k8s.io/apimachinery
// pkg/api/errors), because clients branch on reason and code and users read the message.
import { qualifiedKind, qualifiedResource, type ResourceType } from './resources.ts';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

export class ApiError extends Error {
  readonly status: Status;
  constructor(status: Status) {
    super(status.message ?? status.reason ?? `HTTP ${status.code}`);
    this.name = 'ApiError';
    this.status = status;
  }
  get code(): number {
    return this.status.code;
  }
  get reason(): string | undefined {
    return this.status.reason;
  }
}

export function failure(code: number, reason: string, message: string, details?: StatusDetails): ApiError {
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });
}

export function success(code = 200, details?: StatusDetails): Status {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', ...(details ? { details } : {}), code };
}

type ResourceRef = Pick<ResourceType, 'group' | 'plural'>;

function groupDetail(r: ResourceRef): { group?: string } {
  return r.group === '' ? {} : { group: r.group };
}

export function notFound(r: ResourceRef, name: string): ApiError {
  return failure(404, 'NotFound', `${qualifiedResource(r)} "${name}" not found`, { name, ...groupDetail(r), kind: r.plural });
}

export function alreadyExists(r: ResourceRef, name: string): ApiError {
  return failure(409, 'AlreadyExists', `${qualifiedResource(r)} "${name}" already exists`, { name, ...groupDetail(r), kind: r.plural });
}

export function conflict(
  r: ResourceRef,
  name: string,
  why = 'the object has been modified; please apply your changes to the latest version and try again',
): ApiError {
  return failure(409, 'Conflict', `Operation cannot be fulfilled on ${qualifiedResource(r)} "${name}": ${why}`, {
    name,
    ...groupDetail(r),
    kind: r.plural,
  });
}

export interface FieldError {
  /** FieldValueRequired, FieldValueInvalid, FieldValueForbidden, FieldValueNotSupported, FieldValueDuplicate, FieldValueTooLong, FieldValueTooMany */
  type:
    | 'FieldValueRequired'
    | 'FieldValueInvalid'
    | 'FieldValueForbidden'
    | 'FieldValueNotSupported'
    | 'FieldValueDuplicate'
    | 'FieldValueTooLong'
    | 'FieldValueTooMany';
  field: string;
  /** The part after "Invalid value: …" or "Required value: …". */
  detail: string;
  value?: unknown;
}

function fieldErrorMessage(e: FieldError): string {
  switch (e.type) {
    case 'FieldValueRequired':
      return `Required value${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueInvalid':
      return `Invalid value: ${JSON.stringify(e.value ?? null)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueForbidden':
      return `Forbidden${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueNotSupported':
      return `Unsupported value: ${JSON.stringify(e.value ?? null)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueDuplicate':
      return `Duplicate value: ${JSON.stringify(e.value ?? null)}`;
    case 'FieldValueTooLong':
      return `Too long: ${e.detail}`;
    case 'FieldValueTooMany':
      return `Too many: ${JSON.stringify(e.value ?? null)}: ${e.detail}`;
  }
}

export function invalid(r: Pick<ResourceType, 'group' | 'kind'>, name: string, errors: FieldError[]): ApiError {
  const parts = errors.map((e) => `${e.field}: ${fieldErrorMessage(e)}`);
  const summary = parts.length === 1 ? parts[0] : `[${parts.join(', ')}]`;
  return failure(422, 'Invalid', `${qualifiedKind(r)} "${name}" is invalid: ${summary}`, {
    name,
    ...(r.group === '' ? {} : { group: r.group }),
    kind: r.kind,
    causes: errors.map((e) => ({ reason: e.type, message: fieldErrorMessage(e), field: e.field })),
  });
}

export function badRequest(message: string): ApiError {
  return failure(400, 'BadRequest', message);
}

export function forbidden(r: ResourceRef | undefined, name: string | undefined, why: string): ApiError {
  if (!r) return failure(403, 'Forbidden', `forbidden: ${why}`);
  const subject = name ? `${qualifiedResource(r)} "${name}"` : qualifiedResource(r);
  return failure(403, 'Forbidden', `${subject} is forbidden: ${why}`, { ...(name ? { name } : {}), ...groupDetail(r), kind: r.plural });
}

export function unauthorized(): ApiError {
  return failure(401, 'Unauthorized', 'Unauthorized');
}

export function methodNotAllowed(): ApiError {
  return failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
}

export function internalError(message: string): ApiError {
  return failure(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
}

export function expired(message: string): ApiError {
  return failure(410, 'Expired', message);
}

export function unsupportedMediaType(message: string): ApiError {
  return failure(415, 'UnsupportedMediaType', message);
}

export function tooManyRequests(message: string, causes?: StatusCause[]): ApiError {
  return failure(429, 'TooManyRequests', message, causes ? { causes } : undefined);
}

export function pageNotFound(): ApiError {
  return failure(404, 'NotFound', 'the server could not find the requested resource', {});
}
