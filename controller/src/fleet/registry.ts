/**
 * The fleet registry: what the controller knows about each node — whether its agent is
 * connected, the agent's version, and the last NodeReport.
 */
import type { INodeReport } from '#proto/codec.js';

export interface NodeEntry {
  name: string;
  connected: boolean;
  agentVersion: string;
  instanceId: string;
  capabilities: string[];
  connectedAt: number;
  disconnectedAt?: number;
  lastReportAt?: number;
  report?: INodeReport;
  reports: number;
}

export interface NodeSummary {
  name: string;
  connected: boolean;
  stale: boolean;
  agentVersion: string;
  lastReportAgeSeconds: number | null;
  cpuCores: number;
  cpuUsageCores: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  load1: number;
  pods: number;
}

export type ReportListener = (node: string, report: INodeReport, at: number) => void;

export class FleetRegistry {
  private readonly nodes = new Map<string, NodeEntry>();
  private readonly listeners = new Set<ReportListener>();

  constructor(
    private readonly staleAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  connected(name: string, info: { agentVersion: string; instanceId: string; capabilities: string[] }): void {
    const prev = this.nodes.get(name);
    this.nodes.set(name, {
      name,
      connected: true,
      agentVersion: info.agentVersion,
      instanceId: info.instanceId,
      capabilities: info.capabilities,
      connectedAt: this.now(),
      ...(prev?.report ? { report: prev.report, lastReportAt: prev.lastReportAt } : {}),
      reports: prev?.reports ?? 0,
    });
  }

  disconnected(name: string, instanceId: string): void {
    const e = this.nodes.get(name);
    // A newer connection of the same node may already have replaced this one.
    if (e && e.instanceId === instanceId) {
      e.connected = false;
      e.disconnectedAt = this.now();
    }
  }

  report(name: string, report: INodeReport): void {
    const e = this.nodes.get(name);
    if (!e) return;
    e.report = report;
    e.lastReportAt = this.now();
    e.reports++;
    for (const l of this.listeners) {
      try {
        l(name, report, e.lastReportAt);
      } catch {
        // a listener's failure is its own: the report is stored whatever it does
      }
    }
  }

  /** Calls `listener` with every report as it is stored (the neighbour scorer's samples); returns the unsubscribe. */
  onReport(listener: ReportListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get(name: string): NodeEntry | undefined {
    return this.nodes.get(name);
  }

  entries(): NodeEntry[] {
    return [...this.nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  summary(e: NodeEntry): NodeSummary {
    const n = e.report?.node;
    const age = e.lastReportAt === undefined ? null : (this.now() - e.lastReportAt) / 1000;
    return {
      name: e.name,
      connected: e.connected,
      stale: age === null || age * 1000 > this.staleAfterMs,
      agentVersion: e.agentVersion,
      lastReportAgeSeconds: age,
      cpuCores: n?.cpuCores ?? 0,
      cpuUsageCores: n?.cpuUsageCores ?? 0,
      memoryUsedBytes: Number(n?.memoryUsedBytes ?? 0),
      memoryTotalBytes: Number(n?.memoryTotalBytes ?? 0),
      load1: n?.load1 ?? 0,
      pods: e.report?.pods?.length ?? 0,
    };
  }

  list(): NodeSummary[] {
    return this.entries().map((e) => this.summary(e));
  }
}
