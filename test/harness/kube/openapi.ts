// A minimal OpenAPI v3 surface. kubectl 1.32 (create/apply/replace with the default
// --validate=strict) first asks /openapi/v3 whether the server supports the
// `fieldValidation` query parameter for the kind; when it does, kubectl leaves validation
// to the server instead of downloading schemas. So each group-version document lists one
// PATCH operation per kind with x-kubernetes-group-version-kind and that parameter — and
// no component schemas, which makes `kubectl apply` compute its strategic merge patch from
// its compiled-in types. For kinds the v3 check does not cover (a `kind: List` file),
// kubectl validates client-side against /openapi/v2, always read as protobuf: an empty
// gnostic Document (no definitions) makes it skip validation instead of failing.
import { createHash } from 'node:crypto';

import type { ResourceTable } from './resources.ts';

function gvPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

export function openApiV3Index(table: ResourceTable): Record<string, unknown> {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  const seen = new Set<string>();
  for (const r of table.all) {
    const key = gvPath(r.group, r.version);
    if (seen.has(key)) continue;
    seen.add(key);
    const hash = createHash('sha512')
      .update(JSON.stringify(openApiV3GroupVersion(table, r.group, r.version)))
      .digest('hex')
      .toUpperCase()
      .slice(0, 128);
    paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${hash}` };
  }
  return { paths };
}

/** The document for one group-version, or undefined when the double does not serve it. */
export function openApiV3GroupVersion(table: ResourceTable, group: string, version: string): Record<string, unknown> | undefined {
  const resources = table.all.filter((r) => r.group === group && r.version === version);
  if (resources.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  const prefix = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  for (const r of resources) {
    if (r.virtual) continue;
    const path = r.namespaced ? `${prefix}/namespaces/{namespace}/${r.plural}/{name}` : `${prefix}/${r.plural}/{name}`;
    paths[path] = {
      patch: {
        operationId: `patch${r.kind}`,
        parameters: [
          { name: 'dryRun', in: 'query', schema: { type: 'string', uniqueItems: true } },
          { name: 'fieldManager', in: 'query', schema: { type: 'string', uniqueItems: true } },
          { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
        ],
        responses: { '200': { description: 'OK' } },
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
      },
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: 'v1.32.0' },
    paths,
    components: { schemas: {} },
  };
}

/** openapi_v2.Document {swagger: "2.0", info: {title, version}} in protobuf wire format. */
export function openApiV2Protobuf(): Buffer {
  const str = (field: number, value: string): Buffer => {
    const bytes = Buffer.from(value, 'utf8');
    return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
  };
  const info = Buffer.concat([str(1, 'Kubernetes'), str(2, 'v1.32.0')]);
  return Buffer.concat([str(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
}
