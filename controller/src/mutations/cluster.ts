/**
 * What a rollback needs from Kubernetes, behind a small interface: read and JSON-patch a
 * Deployment, find a Pod by label, evict it (the Eviction API respects PodDisruptionBudgets);
 * read and JSON-patch the objects whose labels the neighbour scorer writes (Pods and workloads).
 * The implementation uses @kubernetes/client-node, from a kubeconfig or in-cluster.
 */
import { existsSync } from 'node:fs';
import { AppsV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';

import { ErrorCodes, NemuError } from '#common/errors.js';

import type { KubeObject } from '../mutators/types.ts';

export interface ClusterClient {
  readDeployment(namespace: string, name: string): Promise<KubeObject>;
  patchDeployment(namespace: string, name: string, ops: Operation[]): Promise<KubeObject>;
  podsWithLabel(namespace: string, selector: string): Promise<KubeObject[]>;
  evictPod(namespace: string, name: string): Promise<void>;
  /** A Pod, Deployment, StatefulSet or DaemonSet (the kinds `LABELLED_KINDS` names). */
  readObject(kind: LabelledKind, namespace: string, name: string): Promise<KubeObject>;
  patchObject(kind: LabelledKind, namespace: string, name: string, ops: Operation[]): Promise<KubeObject>;
}

/** Kinds whose labels Nemutator writes (bad-neighbour labels) and can restore. */
export const LABELLED_KINDS = ['Pod', 'Deployment', 'StatefulSet', 'DaemonSet'] as const;
export type LabelledKind = (typeof LABELLED_KINDS)[number];

export function isLabelledKind(kind: string): kind is LabelledKind {
  return (LABELLED_KINDS as readonly string[]).includes(kind);
}

/** The cluster from `kubeconfig`, or in-cluster in a pod; undefined when there is none (local mode). */
export function clusterFromConfig(kubeconfig: string): ClusterClient | undefined {
  const kc = new KubeConfig();
  if (kubeconfig) kc.loadFromFile(kubeconfig);
  else if (process.env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) kc.loadFromCluster();
  else return undefined;
  return new KubeClusterClient(kc);
}

interface ApiError {
  code?: number;
  body?: unknown;
  message?: string;
}

/** The apiserver's own message (Status.message) when there is one. */
export function apiMessage(e: unknown): string {
  const err = e as ApiError;
  let body = err.body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      // plain text
    }
  }
  if (typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return typeof body === 'string' && body ? body : (err.message ?? String(e));
}

export function apiStatus(e: unknown): number | undefined {
  return typeof (e as ApiError).code === 'number' ? (e as ApiError).code : undefined;
}

class KubeClusterClient implements ClusterClient {
  private readonly apps: AppsV1Api;
  private readonly core: CoreV1Api;
  constructor(kc: KubeConfig) {
    this.apps = kc.makeApiClient(AppsV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
  }

  private async call<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (e) {
      const status = apiStatus(e);
      if (status === undefined)
        throw new NemuError(ErrorCodes.INTERNAL, `cannot reach the Kubernetes API to ${what}: ${apiMessage(e)}`, { status: 502, cause: e });
      throw Object.assign(
        new NemuError(
          status === 404 ? ErrorCodes.NOT_FOUND : status === 409 || status === 422 ? ErrorCodes.CONFLICT : ErrorCodes.INTERNAL,
          `${what}: ${apiMessage(e)}`,
          { status: status >= 400 && status < 500 ? status : 502, cause: e },
        ),
        { apiStatus: status },
      );
    }
  }

  readDeployment(namespace: string, name: string): Promise<KubeObject> {
    return this.call(
      `read deployment ${namespace}/${name}`,
      async () => (await this.apps.readNamespacedDeployment({ namespace, name })) as unknown as KubeObject,
    );
  }
  patchDeployment(namespace: string, name: string, ops: Operation[]): Promise<KubeObject> {
    return this.call(
      `patch deployment ${namespace}/${name}`,
      async () =>
        (await this.apps.patchNamespacedDeployment(
          { namespace, name, body: ops },
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        )) as unknown as KubeObject,
    );
  }
  podsWithLabel(namespace: string, selector: string): Promise<KubeObject[]> {
    return this.call(
      `list pods in ${namespace}`,
      async () => (await this.core.listNamespacedPod({ namespace, labelSelector: selector })).items as unknown as KubeObject[],
    );
  }
  readObject(kind: LabelledKind, namespace: string, name: string): Promise<KubeObject> {
    const args = { namespace, name };
    return this.call(`read ${kind.toLowerCase()} ${namespace}/${name}`, async () => {
      if (kind === 'Pod') return (await this.core.readNamespacedPod(args)) as unknown as KubeObject;
      if (kind === 'Deployment') return (await this.apps.readNamespacedDeployment(args)) as unknown as KubeObject;
      if (kind === 'StatefulSet') return (await this.apps.readNamespacedStatefulSet(args)) as unknown as KubeObject;
      return (await this.apps.readNamespacedDaemonSet(args)) as unknown as KubeObject;
    });
  }
  patchObject(kind: LabelledKind, namespace: string, name: string, ops: Operation[]): Promise<KubeObject> {
    const args = { namespace, name, body: ops };
    const json = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch);
    return this.call(`patch ${kind.toLowerCase()} ${namespace}/${name}`, async () => {
      if (kind === 'Pod') return (await this.core.patchNamespacedPod(args, json)) as unknown as KubeObject;
      if (kind === 'Deployment') return (await this.apps.patchNamespacedDeployment(args, json)) as unknown as KubeObject;
      if (kind === 'StatefulSet') return (await this.apps.patchNamespacedStatefulSet(args, json)) as unknown as KubeObject;
      return (await this.apps.patchNamespacedDaemonSet(args, json)) as unknown as KubeObject;
    });
  }
  async evictPod(namespace: string, name: string): Promise<void> {
    await this.call(`evict pod ${namespace}/${name}`, () =>
      this.core.createNamespacedPodEviction({ namespace, name, body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } } }),
    );
  }
}
