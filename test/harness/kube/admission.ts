// Mutating admission webhooks, dispatched as kube-apiserver's MutatingAdmissionWebhook
// plugin does (staging/src/k8s.io/apiserver/pkg/admission/plugin/webhook/mutating):
// configurations in name order, rules + namespaceSelector + objectSelector + CEL
// matchConditions (a subset of CEL, cel.ts), one
// admission.k8s.io/v1 AdmissionReview per call over TLS verified with caBundle (HTTP/2
// when the webhook offers it), timeoutSeconds, failurePolicy, response verification,
// JSONPatch application and one reinvocation round for reinvocationPolicy IfNeeded.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { isDeepStrictEqual } from 'node:util';
import type { Operation } from 'fast-json-patch';
import fastJsonPatch from 'fast-json-patch';

import type { UserInfo } from './auth.ts';
import { CelCompileError, type CelProgram, CelUnsupportedError, compileCel } from './cel.ts';
import type { ResourceType } from './resources.ts';
import { type LabelSelectorObject, matchesLabelSelectorObject } from './selectors.ts';
import { ApiError, badRequest, failure, forbidden, internalError, type Status } from './status.ts';
import type { KubeObject } from './store.ts';

const { applyPatch } = fastJsonPatch;

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface AdmissionAttributes {
  resource: ResourceType;
  subresource?: string;
  /** The kind of the object under admission (Eviction, Scale, … for subresources). */
  kind: GroupVersionKind;
  operation: AdmissionOperation;
  namespace?: string;
  name?: string;
  object?: KubeObject;
  oldObject?: KubeObject;
  user: UserInfo;
  dryRun: boolean;
  options?: Record<string, unknown>;
}

export interface AdmissionResult {
  object?: KubeObject;
  warnings: string[];
}

/** Maps a `service` clientConfig to a reachable URL (tests run webhooks on loopback). */
export type ServiceResolver = (namespace: string, name: string, port: number) => string | undefined;

export interface WebhookAdmissionOptions {
  configurations(): KubeObject[];
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  serviceResolver?: ServiceResolver;
  /** Called for each webhook call: for tests and logs. */
  onCall?: (event: { webhook: string; uid: string; operation: AdmissionOperation; outcome: string }) => void;
}

interface Rule {
  apiGroups?: string[];
  apiVersions?: string[];
  operations?: string[];
  resources?: string[];
  scope?: string;
}

interface Webhook {
  name: string;
  clientConfig: { url?: string; service?: { namespace: string; name: string; path?: string; port?: number }; caBundle?: string };
  rules?: Rule[];
  failurePolicy?: 'Ignore' | 'Fail';
  namespaceSelector?: LabelSelectorObject;
  objectSelector?: LabelSelectorObject;
  sideEffects?: string;
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
  reinvocationPolicy?: 'Never' | 'IfNeeded';
  matchConditions?: { name: string; expression: string }[];
}

// ---- matchConditions (k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions) ----

const MATCH_CONDITION_ENV = { variables: ['object', 'oldObject', 'request'], unsupportedVariables: ['authorizer'], resultType: 'bool' as const };
const compiled = new Map<string, CelProgram | Error>();

function compileMatchCondition(expression: string): CelProgram | Error {
  let p = compiled.get(expression);
  if (p === undefined) {
    try {
      p = compileCel(expression, MATCH_CONDITION_ENV);
    } catch (err) {
      if (!(err instanceof CelCompileError) && !(err instanceof CelUnsupportedError)) throw err;
      p = err;
    }
    if (compiled.size > 1000) compiled.clear();
    compiled.set(expression, p);
  }
  return p;
}

/** Why a match condition expression is refused at create/update, as kube's "compilation failed: …". */
export function matchConditionProblem(expression: string): string | undefined {
  const p = compileMatchCondition(expression);
  return p instanceof Error ? `compilation failed: ${p.message}` : undefined;
}

/** kube-apiserver does not send these through webhooks, to keep the cluster recoverable. */
const NEVER_ADMITTED = new Set(['admissionregistration.k8s.io/mutatingwebhookconfigurations', 'admissionregistration.k8s.io/validatingwebhookconfigurations']);

export class WebhookAdmission {
  private readonly opts: WebhookAdmissionOptions;

  constructor(opts: WebhookAdmissionOptions) {
    this.opts = opts;
  }

  async admit(attrs: AdmissionAttributes): Promise<AdmissionResult> {
    const warnings: string[] = [];
    if (NEVER_ADMITTED.has(`${attrs.resource.group}/${attrs.resource.plural}`)) return { object: attrs.object, warnings };
    const hooks = this.matchingWebhooks(attrs);
    if (hooks.length === 0) return { object: attrs.object, warnings };

    let object = attrs.object ? structuredClone(attrs.object) : undefined;
    const previouslyInvoked = new Set<string>();
    const toReinvoke = new Set<string>();
    let shouldReinvoke = false;

    for (const round of [0, 1]) {
      if (round === 1 && !shouldReinvoke) break;
      for (const hook of hooks) {
        if (round === 1 && !toReinvoke.has(hook.name)) continue;
        // Selectors are evaluated against the object as it is now.
        if (!this.matchesObjectSelector(hook, { ...attrs, object })) continue;
        if (!this.matchesConditions(hook, { ...attrs, object })) continue;
        const { changed, object: next } = await this.callHook(hook, { ...attrs, object }, warnings);
        object = next;
        if (changed && round === 0) {
          // A change makes every earlier IfNeeded webhook eligible for reinvocation.
          for (const n of previouslyInvoked) toReinvoke.add(n);
          shouldReinvoke = true;
        }
        if (hook.reinvocationPolicy === 'IfNeeded') previouslyInvoked.add(hook.name);
      }
    }
    return { object, warnings };
  }

  private matchingWebhooks(attrs: AdmissionAttributes): Webhook[] {
    const configs = this.opts.configurations().sort((a, b) => ((a.metadata.name ?? '') < (b.metadata.name ?? '') ? -1 : 1));
    const out: Webhook[] = [];
    for (const config of configs) {
      for (const hook of (config['webhooks'] as Webhook[] | undefined) ?? []) {
        if (!(hook.rules ?? []).some((rule) => ruleMatches(rule, attrs))) continue;
        if (!this.matchesNamespaceSelector(hook, attrs)) continue;
        out.push(hook);
      }
    }
    return out;
  }

  private matchesNamespaceSelector(hook: Webhook, attrs: AdmissionAttributes): boolean {
    const selector = hook.namespaceSelector ?? {};
    if (isEmptySelector(selector)) return true;
    if (!attrs.resource.namespaced) {
      if (attrs.resource.kind !== 'Namespace' || attrs.resource.group !== '') return true;
      const labels = (attrs.object ?? attrs.oldObject)?.metadata.labels;
      return matchesLabelSelectorObject(selector, labels);
    }
    return matchesLabelSelectorObject(selector, this.opts.namespaceLabels(attrs.namespace ?? '') ?? {});
  }

  private matchesObjectSelector(hook: Webhook, attrs: AdmissionAttributes): boolean {
    const selector = hook.objectSelector ?? {};
    if (isEmptySelector(selector)) return true;
    return (
      (!!attrs.object && matchesLabelSelectorObject(selector, attrs.object.metadata?.labels ?? {})) ||
      (!!attrs.oldObject && matchesLabelSelectorObject(selector, attrs.oldObject.metadata?.labels ?? {}))
    );
  }

  /**
   * As matchconditions.matcher.Match and the generic webhook's ShouldCallHook: every
   * condition true → call; any false → skip (even if another errored); errors and no false
   * → failurePolicy: Ignore skips the webhook, Fail refuses the request with 403 Forbidden.
   */
  private matchesConditions(hook: Webhook, attrs: AdmissionAttributes): boolean {
    const conditions = hook.matchConditions ?? [];
    if (conditions.length === 0) return true;
    const request = buildReview('', attrs)['request'] as Record<string, unknown>;
    delete request['uid'];
    delete request['object'];
    delete request['oldObject'];
    const vars = { object: attrs.object ?? null, oldObject: attrs.oldObject ?? null, request };
    const errors: string[] = [];
    for (const c of conditions) {
      const program = compileMatchCondition(String(c.expression ?? '').trim());
      if (program instanceof Error) {
        errors.push(`compilation failed: ${program.message}`);
        continue;
      }
      const r = program.evaluate(vars);
      if ('error' in r) errors.push(`expression '${program.expression}' resulted in error: ${r.error}`);
      else if (r.value === false) {
        this.opts.onCall?.({ webhook: hook.name, uid: '', operation: attrs.operation, outcome: `skipped: match condition ${c.name} is false` });
        return false;
      } else if (r.value !== true)
        errors.push(`expression '${program.expression}' resulted in error: no such overload: result of type ${typeof r.value} is not bool`);
    }
    if (errors.length === 0) return true;
    const message = errors.length === 1 ? (errors[0] as string) : `[${errors.join(', ')}]`;
    this.opts.onCall?.({
      webhook: hook.name,
      uid: '',
      operation: attrs.operation,
      outcome: hook.failurePolicy === 'Ignore' ? `ignored: ${message}` : `failed: ${message}`,
    });
    if (hook.failurePolicy === 'Ignore') return false;
    throw forbidden(attrs.resource, attrs.name, message);
  }

  private async callHook(hook: Webhook, attrs: AdmissionAttributes, warnings: string[]): Promise<{ changed: boolean; object: KubeObject | undefined }> {
    if (attrs.dryRun && hook.sideEffects !== 'None' && hook.sideEffects !== 'NoneOnDryRun') {
      throw badRequest(`admission webhook "${hook.name}" does not support dry run`);
    }
    const uid = randomUUID();
    const ignore = hook.failurePolicy === 'Ignore';
    let response: AdmissionResponse;
    try {
      if (!(hook.admissionReviewVersions ?? []).includes('v1')) throw new CallError('webhook does not accept known AdmissionReview versions');
      const review = buildReview(uid, attrs);
      const raw = await this.post(hook, review);
      response = verifyResponse(uid, raw);
    } catch (err) {
      if (!(err instanceof CallError)) throw err;
      const message = `failed calling webhook "${hook.name}": ${err.message}`;
      this.opts.onCall?.({ webhook: hook.name, uid, operation: attrs.operation, outcome: ignore ? `ignored: ${err.message}` : `failed: ${err.message}` });
      if (ignore) return { changed: false, object: attrs.object };
      if (err.status) throw new ApiError(err.status);
      throw internalError(message);
    }
    for (const w of response.warnings ?? []) warnings.push(w);
    if (!response.allowed) {
      this.opts.onCall?.({ webhook: hook.name, uid, operation: attrs.operation, outcome: 'denied' });
      throw rejection(hook.name, response.status);
    }
    if (!response.patch) {
      this.opts.onCall?.({ webhook: hook.name, uid, operation: attrs.operation, outcome: 'allowed' });
      return { changed: false, object: attrs.object };
    }
    let ops: Operation[];
    try {
      ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Operation[];
      if (!Array.isArray(ops)) throw new Error('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
    } catch (err) {
      throw internalError((err as Error).message);
    }
    if (ops.length === 0) return { changed: false, object: attrs.object };
    if (!attrs.object) {
      throw internalError(`admission webhook "${hook.name}" attempted to modify the object, which is not supported for this operation`);
    }
    let patched: KubeObject;
    try {
      patched = applyPatch(structuredClone(attrs.object), ops, true, false).newDocument as KubeObject;
    } catch (err) {
      throw internalError((err as Error).message.split('\n')[0] as string);
    }
    const changed = !isDeepStrictEqual(patched, attrs.object);
    this.opts.onCall?.({ webhook: hook.name, uid, operation: attrs.operation, outcome: changed ? 'patched' : 'allowed' });
    return { changed, object: patched };
  }

  private async post(hook: Webhook, review: unknown): Promise<unknown> {
    const timeoutSeconds = hook.timeoutSeconds ?? 10;
    const cc = hook.clientConfig ?? {};
    let url: URL;
    let serverName: string;
    if (cc.url) {
      url = new URL(cc.url);
      serverName = url.hostname;
    } else if (cc.service) {
      const port = cc.service.port ?? 443;
      const resolved = this.opts.serviceResolver?.(cc.service.namespace, cc.service.name, port);
      const target = `https://${cc.service.name}.${cc.service.namespace}.svc:${port}${cc.service.path ?? '/'}`;
      if (!resolved)
        throw new CallError(
          `failed to call webhook: Post "${target}?timeout=${timeoutSeconds}s": dial tcp: lookup ${cc.service.name}.${cc.service.namespace}.svc: no such host`,
        );
      url = new URL(resolved);
      url.pathname = cc.service.path ?? url.pathname;
      serverName = `${cc.service.name}.${cc.service.namespace}.svc`;
    } else {
      throw new CallError('failed to call webhook: no clientConfig url or service');
    }
    url.searchParams.set('timeout', `${timeoutSeconds}s`);
    const shown = cc.url ? url.toString() : `https://${serverName}:${cc.service?.port ?? 443}${url.pathname}${url.search}`;
    const ca = cc.caBundle ? Buffer.from(cc.caBundle, 'base64').toString('utf8') : undefined;
    const body = Buffer.from(JSON.stringify(review));
    let res: { status: number; body: Buffer };
    try {
      res = await postOverTls(url, serverName, ca, body, timeoutSeconds * 1000);
    } catch (err) {
      throw new CallError(`failed to call webhook: Post "${shown}": ${(err as Error).message}`);
    }
    if (res.status < 200 || res.status >= 300) {
      const text = res.body.toString('utf8').slice(0, 512);
      throw new CallError(`failed to call webhook: an error on the server ("${text}") has prevented the request from succeeding`, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `failed calling webhook "${hook.name}": failed to call webhook: an error on the server ("${text}") has prevented the request from succeeding`,
        reason: 'InternalError',
        code: 500,
      });
    }
    try {
      return JSON.parse(res.body.toString('utf8'));
    } catch (err) {
      throw new CallError(`failed to call webhook: ${(err as Error).message}`);
    }
  }
}

class CallError extends Error {
  readonly status: Status | undefined;
  constructor(message: string, status?: Status) {
    super(message);
    this.status = status;
  }
}

interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: Partial<Status>;
  patch?: string;
  patchType?: string;
  warnings?: string[];
}

function verifyResponse(uid: string, raw: unknown): AdmissionResponse {
  const invalid = (why: string): never => {
    throw new CallError(`received invalid webhook response: ${why}`);
  };
  const review = raw as { apiVersion?: string; kind?: string; response?: AdmissionResponse } | null;
  if (!review || typeof review !== 'object') invalid('webhook response was absent');
  const r = review!.response;
  if (!r) invalid('webhook response was absent');
  if (r!.uid !== uid) invalid(`expected response.uid="${uid}", got "${String(r!.uid ?? '')}"`);
  if (review!.apiVersion !== 'admission.k8s.io/v1' || review!.kind !== 'AdmissionReview') {
    invalid(
      `expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got ${String(review!.apiVersion ?? '')}, Kind=${String(review!.kind ?? '')}`,
    );
  }
  if (r!.patchType && r!.patchType !== 'JSONPatch') invalid(`unsupported patchType ${r!.patchType}`);
  if (r!.patch && !r!.patchType) invalid('patchType is required when patch is present');
  return r!;
}

function rejection(webhook: string, status: Partial<Status> | undefined): ApiError {
  const deniedBy = `admission webhook "${webhook}" denied the request`;
  const s = { ...(status ?? {}) };
  const code = typeof s.code === 'number' && s.code >= 400 ? s.code : 400;
  const message = s.message ? `${deniedBy}: ${s.message}` : s.reason ? `${deniedBy}: ${s.reason}` : `${deniedBy} without explanation`;
  return failure(code, s.reason ?? '', message, s.details);
}

function isEmptySelector(s: LabelSelectorObject): boolean {
  return Object.keys(s.matchLabels ?? {}).length === 0 && (s.matchExpressions ?? []).length === 0;
}

function ruleMatches(rule: Rule, attrs: AdmissionAttributes): boolean {
  const has = (list: string[] | undefined, v: string): boolean => !!list && (list.includes('*') || list.includes(v));
  if (!has(rule.operations, attrs.operation)) return false;
  if (!has(rule.apiGroups, attrs.resource.group)) return false;
  if (!has(rule.apiVersions, attrs.resource.version)) return false;
  const scope = rule.scope ?? '*';
  if (scope === 'Cluster' && attrs.resource.namespaced) return false;
  if (scope === 'Namespaced' && !attrs.resource.namespaced) return false;
  const res = attrs.resource.plural;
  const sub = attrs.subresource;
  return (rule.resources ?? []).some((r) => {
    if (r === '*/*') return true;
    const [rr, rs] = r.split('/') as [string, string | undefined];
    if (!sub) return rs === undefined && (rr === '*' || rr === res);
    return rs !== undefined && (rr === '*' || rr === res) && (rs === '*' || rs === sub);
  });
}

function buildReview(uid: string, attrs: AdmissionAttributes): Record<string, unknown> {
  const kind = attrs.kind;
  const resource = { group: attrs.resource.group, version: attrs.resource.version, resource: attrs.resource.plural };
  const optionsKind =
    attrs.operation === 'CREATE'
      ? 'CreateOptions'
      : attrs.operation === 'UPDATE'
        ? 'UpdateOptions'
        : attrs.operation === 'DELETE'
          ? 'DeleteOptions'
          : undefined;
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind,
      resource,
      ...(attrs.subresource ? { subResource: attrs.subresource } : {}),
      requestKind: kind,
      requestResource: resource,
      ...(attrs.subresource ? { requestSubResource: attrs.subresource } : {}),
      ...(attrs.name ? { name: attrs.name } : {}),
      ...(attrs.namespace ? { namespace: attrs.namespace } : {}),
      operation: attrs.operation,
      userInfo: {
        username: attrs.user.username,
        ...(attrs.user.uid ? { uid: attrs.user.uid } : {}),
        groups: attrs.user.groups,
        ...(attrs.user.extra && Object.keys(attrs.user.extra).length ? { extra: attrs.user.extra } : {}),
      },
      object: attrs.object ?? null,
      oldObject: attrs.oldObject ?? null,
      dryRun: attrs.dryRun,
      options: optionsKind ? { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', ...(attrs.options ?? {}) } : null,
    },
  };
}

/**
 * POSTs JSON over TLS, speaking HTTP/2 when the server negotiates h2 through ALPN (as Go's
 * client in kube-apiserver does) and HTTP/1.1 otherwise.
 */
export function postOverTls(url: URL, serverName: string, ca: string | undefined, body: Buffer, timeoutMs: number): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const cleanups: (() => void)[] = [];
    const finish = (err: Error | undefined, value?: { status: number; body: Buffer }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const c of cleanups) c();
      if (err) reject(err);
      else resolve(value as { status: number; body: Buffer });
    };
    const timer = setTimeout(() => finish(new Error('context deadline exceeded')), timeoutMs);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 443);
    const socket = tls.connect({
      host,
      port,
      ...(ca ? { ca } : {}),
      ...(net.isIP(serverName) ? {} : { servername: serverName }),
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(serverName, cert),
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    cleanups.push(() => socket.destroy());
    socket.once('error', (err) => finish(describeSocketError(err, host, port)));
    socket.once('secureConnect', () => {
      const path = `${url.pathname}${url.search}`;
      if (socket.alpnProtocol === 'h2') {
        const session = http2.connect(`https://${url.host}`, { createConnection: () => socket });
        cleanups.push(() => session.destroy());
        session.on('error', (err) => finish(err));
        const req = session.request({
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/json',
          accept: 'application/json, */*',
          'content-length': String(body.length),
        });
        const chunks: Buffer[] = [];
        let status = 0;
        req.on('response', (headers) => {
          status = Number(headers[':status']);
        });
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => finish(undefined, { status, body: Buffer.concat(chunks) }));
        req.on('error', (err) => finish(err));
        req.end(body);
      } else {
        const req = http.request({
          method: 'POST',
          path,
          headers: { host: url.host, 'content-type': 'application/json', accept: 'application/json, */*', 'content-length': body.length },
          // No agent: with createConnection, Node uses the TLS socket negotiated above.
          createConnection: () => socket,
        });
        req.on('response', (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => finish(undefined, { status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
          res.on('error', (err) => finish(err));
        });
        req.on('error', (err) => finish(err));
        req.end(body);
      }
    });
  });
}

function describeSocketError(err: Error & { code?: string }, host: string, port: number): Error {
  if (err.code === 'ECONNREFUSED') return new Error(`dial tcp ${host}:${port}: connect: connection refused`);
  if (err.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || err.code === 'SELF_SIGNED_CERT_IN_CHAIN' || err.code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return new Error('tls: failed to verify certificate: x509: certificate signed by unknown authority');
  }
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return new Error(`tls: failed to verify certificate: x509: ${err.message}`);
  return err;
}
