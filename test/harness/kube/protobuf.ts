// Decoding of the Kubernetes protobuf envelope (`k8s\0` + runtime.Unknown) for the request
// bodies kubectl's typed clients send as application/vnd.kubernetes.protobuf: reviews,
// TokenRequest, Eviction and DeleteOptions (auth can-i, auth whoami, create token, drain).
// Responses stay JSON, which those clients accept. Field numbers are from the
// generated.proto files of k8s.io/api and k8s.io/apimachinery.
import { unsupportedMediaType } from './status.ts';

type Scalar = 'string' | 'int64' | 'bool' | 'bytes';
interface Field {
  name: string;
  type: Scalar | Schema;
  repeated?: boolean;
  /** map<string, value>: entries are messages {key = 1, value = 2}. */
  mapValue?: Scalar | Schema;
}
type Schema = Record<number, Field>;

const OBJECT_META: Schema = {
  1: { name: 'name', type: 'string' },
  2: { name: 'generateName', type: 'string' },
  3: { name: 'namespace', type: 'string' },
  5: { name: 'uid', type: 'string' },
  6: { name: 'resourceVersion', type: 'string' },
  11: { name: 'labels', type: 'string', mapValue: 'string' },
  12: { name: 'annotations', type: 'string', mapValue: 'string' },
};
const EXTRA_VALUE: Schema = { 1: { name: 'items', type: 'string', repeated: true } };
const RESOURCE_ATTRIBUTES: Schema = {
  1: { name: 'namespace', type: 'string' },
  2: { name: 'verb', type: 'string' },
  3: { name: 'group', type: 'string' },
  4: { name: 'version', type: 'string' },
  5: { name: 'resource', type: 'string' },
  6: { name: 'subresource', type: 'string' },
  7: { name: 'name', type: 'string' },
};
const NON_RESOURCE_ATTRIBUTES: Schema = { 1: { name: 'path', type: 'string' }, 2: { name: 'verb', type: 'string' } };
const SAR_SPEC: Schema = {
  1: { name: 'resourceAttributes', type: RESOURCE_ATTRIBUTES },
  2: { name: 'nonResourceAttributes', type: NON_RESOURCE_ATTRIBUTES },
  3: { name: 'user', type: 'string' },
  4: { name: 'groups', type: 'string', repeated: true },
  5: { name: 'extra', type: 'string', mapValue: EXTRA_VALUE },
  6: { name: 'uid', type: 'string' },
};
const SAR: Schema = { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'spec', type: SAR_SPEC } };
const PRECONDITIONS: Schema = { 1: { name: 'uid', type: 'string' }, 2: { name: 'resourceVersion', type: 'string' } };
const DELETE_OPTIONS: Schema = {
  1: { name: 'gracePeriodSeconds', type: 'int64' },
  2: { name: 'preconditions', type: PRECONDITIONS },
  3: { name: 'orphanDependents', type: 'bool' },
  4: { name: 'propagationPolicy', type: 'string' },
  5: { name: 'dryRun', type: 'string', repeated: true },
};

const POLICY_RULE: Schema = {
  1: { name: 'verbs', type: 'string', repeated: true },
  2: { name: 'apiGroups', type: 'string', repeated: true },
  3: { name: 'resources', type: 'string', repeated: true },
  4: { name: 'resourceNames', type: 'string', repeated: true },
  5: { name: 'nonResourceURLs', type: 'string', repeated: true },
};
const LABEL_SELECTOR: Schema = {
  1: { name: 'matchLabels', type: 'string', mapValue: 'string' },
  2: {
    name: 'matchExpressions',
    type: { 1: { name: 'key', type: 'string' }, 2: { name: 'operator', type: 'string' }, 3: { name: 'values', type: 'string', repeated: true } },
    repeated: true,
  },
};
const BINDING: Schema = {
  1: { name: 'metadata', type: OBJECT_META },
  2: {
    name: 'subjects',
    type: {
      1: { name: 'kind', type: 'string' },
      2: { name: 'apiGroup', type: 'string' },
      3: { name: 'name', type: 'string' },
      4: { name: 'namespace', type: 'string' },
    },
    repeated: true,
  },
  3: { name: 'roleRef', type: { 1: { name: 'apiGroup', type: 'string' }, 2: { name: 'kind', type: 'string' }, 3: { name: 'name', type: 'string' } } },
};

const SCHEMAS: Record<string, Schema> = {
  ServiceAccount: {
    1: { name: 'metadata', type: OBJECT_META },
    2: {
      name: 'secrets',
      type: {
        1: { name: 'kind', type: 'string' },
        2: { name: 'namespace', type: 'string' },
        3: { name: 'name', type: 'string' },
        4: { name: 'uid', type: 'string' },
        5: { name: 'apiVersion', type: 'string' },
      },
      repeated: true,
    },
    3: { name: 'imagePullSecrets', type: { 1: { name: 'name', type: 'string' } }, repeated: true },
    4: { name: 'automountServiceAccountToken', type: 'bool' },
  },
  ConfigMap: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: 'string', mapValue: 'string' },
    3: { name: 'binaryData', type: 'string', mapValue: 'bytes' },
    4: { name: 'immutable', type: 'bool' },
  },
  Secret: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'data', type: 'string', mapValue: 'bytes' },
    3: { name: 'type', type: 'string' },
    4: { name: 'stringData', type: 'string', mapValue: 'string' },
    5: { name: 'immutable', type: 'bool' },
  },
  Namespace: { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'spec', type: { 1: { name: 'finalizers', type: 'string', repeated: true } } } },
  Role: { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'rules', type: POLICY_RULE, repeated: true } },
  ClusterRole: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'rules', type: POLICY_RULE, repeated: true },
    3: { name: 'aggregationRule', type: { 1: { name: 'clusterRoleSelectors', type: LABEL_SELECTOR, repeated: true } } },
  },
  RoleBinding: BINDING,
  ClusterRoleBinding: BINDING,
  SelfSubjectAccessReview: SAR,
  SubjectAccessReview: SAR,
  LocalSubjectAccessReview: SAR,
  SelfSubjectReview: { 1: { name: 'metadata', type: OBJECT_META } },
  TokenReview: {
    1: { name: 'metadata', type: OBJECT_META },
    2: { name: 'spec', type: { 1: { name: 'token', type: 'string' }, 2: { name: 'audiences', type: 'string', repeated: true } } },
  },
  TokenRequest: {
    1: { name: 'metadata', type: OBJECT_META },
    2: {
      name: 'spec',
      type: {
        1: { name: 'audiences', type: 'string', repeated: true },
        3: {
          name: 'boundObjectRef',
          type: {
            1: { name: 'kind', type: 'string' },
            2: { name: 'apiVersion', type: 'string' },
            3: { name: 'name', type: 'string' },
            4: { name: 'uid', type: 'string' },
          },
        },
        4: { name: 'expirationSeconds', type: 'int64' },
      },
    },
  },
  Eviction: { 1: { name: 'metadata', type: OBJECT_META }, 2: { name: 'deleteOptions', type: DELETE_OPTIONS } },
  DeleteOptions: DELETE_OPTIONS,
};

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('truncated varint');
      const b = this.buf[this.pos++] as number;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  }
  bytes(): Buffer {
    const len = Number(this.varint());
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.pos += 4;
    else throw new Error(`unsupported wire type ${wireType}`);
  }
}

function scalar(type: Scalar, r: Reader, wireType: number): unknown {
  if (type === 'string') return r.bytes().toString('utf8');
  if (type === 'bytes') return r.bytes().toString('base64');
  const v = wireType === 0 ? r.varint() : 0n;
  if (type === 'bool') return v !== 0n;
  return Number(BigInt.asIntN(64, v));
}

function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const r = new Reader(buf);
  while (!r.done) {
    const key = Number(r.varint());
    const field = schema[key >>> 3];
    const wireType = key & 7;
    if (!field) {
      r.skip(wireType);
      continue;
    }
    if (field.mapValue !== undefined) {
      const entry = new Reader(r.bytes());
      let k = '';
      let v: unknown;
      while (!entry.done) {
        const ek = Number(entry.varint());
        if (ek >>> 3 === 1) k = entry.bytes().toString('utf8');
        else if (ek >>> 3 === 2) v = typeof field.mapValue === 'string' ? scalar(field.mapValue, entry, ek & 7) : decodeMessage(entry.bytes(), field.mapValue);
        else entry.skip(ek & 7);
      }
      const map = (out[field.name] ??= {}) as Record<string, unknown>;
      map[k] = typeof field.mapValue === 'object' && field.mapValue === EXTRA_VALUE ? ((v as { items?: unknown[] } | undefined)?.items ?? []) : v;
      continue;
    }
    const value = typeof field.type === 'string' ? scalar(field.type, r, wireType) : decodeMessage(r.bytes(), field.type);
    if (field.repeated) ((out[field.name] ??= []) as unknown[]).push(value);
    // Go's encoder writes empty strings and empty structs; JSON would omit them.
    else if (value !== '' && !(typeof value === 'object' && value !== null && Object.keys(value).length === 0)) out[field.name] = value;
  }
  return out;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

export function decodeProtobufBody(buf: Buffer): Record<string, unknown> {
  if (buf.length < 4 || !buf.subarray(0, 4).equals(MAGIC)) throw unsupportedMediaType('protobuf body without the k8s envelope');
  const unknown = decodeMessage(buf.subarray(4), {
    1: { name: 'typeMeta', type: { 1: { name: 'apiVersion', type: 'string' }, 2: { name: 'kind', type: 'string' } } },
  });
  const typeMeta = (unknown['typeMeta'] ?? {}) as { apiVersion?: string; kind?: string };
  const schema = SCHEMAS[typeMeta.kind ?? ''];
  if (!schema) {
    throw unsupportedMediaType(
      `the Nemutator Kubernetes double decodes protobuf only for ${Object.keys(SCHEMAS).join(', ')}; got ${typeMeta.kind ?? 'no kind'} — send application/json`,
    );
  }
  const raw = rawBytes(buf.subarray(4));
  return { apiVersion: typeMeta.apiVersion, kind: typeMeta.kind, ...decodeMessage(raw, schema) };
}

function rawBytes(envelope: Buffer): Buffer {
  const r = new Reader(envelope);
  while (!r.done) {
    const key = Number(r.varint());
    if (key >>> 3 === 2 && (key & 7) === 2) return r.bytes();
    r.skip(key & 7);
  }
  return Buffer.alloc(0);
}
