/**
 * The extender's configuration and credentials: its settings from the controller's
 * configuration, the client CA it trusts, and (local mode, tests, benchmarks) a client
 * certificate for kube-scheduler signed by the controller's own CA.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ErrorCodes, NemuError } from '#common/errors.js';

import { issueClientCert } from '../certs/authority.ts';
import type { ControllerConfig } from '../config.ts';
import { ClusterModel } from '../model/model.ts';
import type { Telemetry } from '../telemetry/service.ts';
import type { ExtenderSettings, SchedulerExtender } from './extender.ts';
import { modelClusterView, type UsageProfiles } from './extender-facts.ts';

export function extenderSettings(c: ControllerConfig): ExtenderSettings {
  return {
    staleAfterMs: c.nodeStaleAfter,
    season: c.schedulerSeason,
    filter: { enabled: c.schedulerFilter, memoryPressure: c.schedulerFilterMemoryPressure, silentAfterMs: c.schedulerFilterSilentAfter },
    placementTtlMs: c.schedulerPlacementTtl,
  };
}

export function clientNames(c: ControllerConfig): string[] {
  return c.schedulerClientNames
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

/** The client CA: schedulerClientCaFile, else the controller's own; empty when there is none. */
export function clientCaFor(c: ControllerConfig, ownCaPem: string): string {
  if (!c.schedulerClientCaFile) return ownCaPem;
  try {
    return readFileSync(c.schedulerClientCaFile, 'utf8');
  } catch (e) {
    throw new NemuError(ErrorCodes.CONFIG, `cannot read schedulerClientCaFile ${c.schedulerClientCaFile}: ${(e as Error).message}`);
  }
}

export interface ClientCredentials {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

/**
 * A client certificate for kube-scheduler (CN `commonName`) in `tlsDir`, next to the
 * self-managed CA (ca.crt, ca.key) that signs it; reissued when missing, expiring within a
 * week or signed by another CA.
 */
export async function ensureSchedulerClientCert(tlsDir: string, commonName = 'nemutator-scheduler'): Promise<ClientCredentials> {
  const caCertPem = readFileSync(join(tlsDir, 'ca.crt'), 'utf8');
  const certFile = join(tlsDir, 'scheduler-client.crt');
  const keyFile = join(tlsDir, 'scheduler-client.key');
  if (existsSync(certFile) && existsSync(keyFile)) {
    const certPem = readFileSync(certFile, 'utf8');
    const cert = new X509Certificate(certPem);
    const fresh = Date.parse(cert.validTo) - Date.now() > 7 * 86_400_000;
    if (fresh && cert.checkIssued(new X509Certificate(caCertPem)) && cert.subject.includes(`CN=${commonName}`))
      return { certFile, keyFile, certPem, keyPem: readFileSync(keyFile, 'utf8') };
  }
  const issued = await issueClientCert({ certPem: caCertPem, keyPem: readFileSync(join(tlsDir, 'ca.key'), 'utf8') }, commonName, 365);
  for (const [file, content, mode] of [
    [keyFile, issued.keyPem, 0o600],
    [certFile, issued.certPem, 0o644],
  ] as const) {
    writeFileSync(`${file}.tmp`, content, { mode });
    renameSync(`${file}.tmp`, file);
  }
  return { certFile, keyFile, certPem: issued.certPem, keyPem: issued.keyPem };
}

/**
 * Gives the extender what the features have: telemetry's season and workload profiles, and
 * the cluster's objects (telemetry's cluster model, else one of its own when there is a
 * cluster). Called once per controller by the features.
 */
export function attachSchedulerSources(
  parts: { config: ControllerConfig; scheduler: SchedulerExtender; onStop(c: () => Promise<void> | void): void },
  telemetry: Telemetry | undefined,
  cluster: { model?: ClusterModel; ready?: Promise<void> },
): void {
  const { config, scheduler } = parts;
  if (!config.schedulerExtender) return;
  if (telemetry) scheduler.useProfiles(telemetryProfiles(telemetry));
  const m = cluster.model;
  // Without a cluster, nodes are scored from the agents alone.
  if (!m) return;
  const boundTo = (ns: string, name: string) => {
    const node = m.pod(ns, name)?.spec?.nodeName;
    return typeof node === 'string' ? node : undefined;
  };
  const view = modelClusterView(m);
  parts.onStop(() => view.stop());
  // The first index is built once the model has listed everything (until then, the agents alone).
  scheduler.useCluster(
    view,
    boundTo,
    (cluster.ready ?? Promise.resolve()).then(() => void view.residentsOn('')),
  );
}

/** Telemetry as the extender's usage profiles: a container's expected CPU in the season and its peak working set. */
export function telemetryProfiles(t: Telemetry): UsageProfiles {
  return {
    season: () => t.currentSeason(),
    predicted(namespace, owner, container, season) {
      const s = t.workloadStats(namespace, owner, container);
      if (!s) return undefined;
      const cpu = s.seasonCpu[season === 'offpeak' ? 'off-peak' : 'peak'] ?? s.cpu.p95;
      return { cpuMillis: Math.round(cpu * 1000), memoryBytes: s.memory.max };
    },
  };
}
